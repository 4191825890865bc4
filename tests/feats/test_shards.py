"""The shard machinery both stage-3 tools share (salign.feats.shards): the merge waits for every shard."""
from __future__ import annotations

import pytest

from salign.bin import make_fbank, make_raw
from salign.utils.io import InputError
from tests.feats.test_fbank import make_data


@pytest.mark.parametrize("tool,output", [(make_fbank, "feats.scp"), (make_raw, "wav.scp")],
                         ids=["make_fbank", "make_raw"])
def test_merge_names_missing_shard_log_and_command(tmp_path, tool, output):
    data = make_data(tmp_path)
    out = tmp_path / "dump"
    name = tool.__name__.rsplit(".", 1)[1]
    tool.main(["--data", str(data), "--out", str(out), "--nj", "3", "--job", "1"])
    with pytest.raises(InputError, match=rf"shard 2/3 .*{name}\.2\.log.*salign\.bin\.{name} .*--nj 3 --job 2"):
        tool.main(["--data", str(data), "--out", str(out), "--nj", "3", "--merge"])
    assert not (out / ".done").exists() and not (out / output).exists()
