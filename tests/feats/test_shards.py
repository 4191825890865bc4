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


def test_changed_audio_of_same_name_and_length_is_extracted_again(tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    data = make_data(tmp_path, n_rec=2, n_seg=2)
    out = tmp_path / "dump"
    args = ["--data", str(data), "--out", str(out), "--nj", "2"]
    make_fbank.main(args)
    scp = (out / "feats.scp").read_text()
    first = (out / "split2" / "feats.1.ark").read_bytes()
    capsys.readouterr()
    make_fbank.main(args)
    err = capsys.readouterr().err
    assert err.count("already complete, skipped") == 2 and "already merged, skipped" in err
    wav = tmp_path / "rec1.wav"
    x, sr = sf.read(wav, dtype="int16")
    st = wav.stat()
    sf.write(wav, (x // 2).astype(np.int16), sr, subtype="PCM_16")  # same name, same length
    assert wav.stat().st_size == st.st_size
    make_fbank.main(args)
    err = capsys.readouterr().err
    assert "shard 1/2 already complete" in err and "shard 2/2:" in err and "merged 2 shards" in err
    assert (out / "split2" / "feats.1.ark").read_bytes() == first and (out / "feats.scp").read_text() == scp


def test_option_change_redoes_every_shard(tmp_path, capsys):
    data = make_data(tmp_path, n_rec=1, n_seg=2)
    out = tmp_path / "dump"
    make_fbank.main(["--data", str(data), "--out", str(out), "--nj", "2"])
    capsys.readouterr()
    make_fbank.main(["--data", str(data), "--out", str(out), "--nj", "2", "--num_mel_bins", "40"])
    assert "already complete" not in capsys.readouterr().err
