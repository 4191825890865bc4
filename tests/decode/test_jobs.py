"""Key shares of the decoding jobs and the merge of their outputs (salign.decode.jobs; the decode_utils CLI)."""
from __future__ import annotations

from pathlib import Path

import pytest

from salign.decode.jobs import key_shares, merge_outputs, split_keys
from salign.utils.io import InputError


def test_key_shares_are_contiguous_sorted_and_cover_every_key():
    keys = [f"u{i}" for i in (5, 3, 1, 4, 2, 0, 6)]
    shares = key_shares(keys, 3)
    assert shares == [["u0", "u1"], ["u2", "u3"], ["u4", "u5", "u6"]]
    assert key_shares(["b", "a"], 4) == [["a"], ["b"], [], []]  # more jobs than keys: empty shares
    assert key_shares([], 2) == [[], []]


def write_job(out: Path, j: int, rows: dict, n: int = 1) -> None:
    d = out / f"output.{j}" / f"{n}best_recog"
    d.mkdir(parents=True)
    for name in ("token_int", "text"):
        (d / name).write_text("".join(f"{k} {v}\n" if v else f"{k}\n" for k, v in rows.items()))


def test_merge_sorts_by_key_and_keeps_empty_hypotheses(tmp_path):
    write_job(tmp_path, 1, {"b": "2 3", "a": ""})
    write_job(tmp_path, 2, {"c": "7"})
    write_job(tmp_path, 2, {"c": "8"}, n=2)
    (tmp_path / "3best_recog").mkdir()  # left over from an earlier decode with a larger n-best
    assert merge_outputs(tmp_path, [["a", "b"], ["c"], []]) == 3
    assert (tmp_path / "1best_recog" / "token_int").read_text() == "a\nb 2 3\nc 7\n"
    assert (tmp_path / "2best_recog" / "text").read_text() == "c 8\n"
    assert not (tmp_path / "3best_recog").exists()


def test_merge_names_the_job_and_its_log_when_keys_are_missing(tmp_path):
    write_job(tmp_path, 1, {"a": "1"})
    with pytest.raises(InputError, match=r"job 1 decoded 1 of 2 utterances.*see LOG1"):
        merge_outputs(tmp_path, [["a", "b"]], log="LOGJOB")
    with pytest.raises(InputError, match=r"output.2: decoding job wrote nothing"):
        merge_outputs(tmp_path, [None, ["c"]])


def test_decode_utils_cli_split_then_merge(tmp_path, capsys):
    from salign.bin.decode_utils import main

    (tmp_path / "feats.scp").write_text("u2 a.ark:9\nu1 a.ark:1\nu3 a.ark:20\n")
    assert main(["split", "--scp", str(tmp_path / "feats.scp"), "--nj", "2", "--out", str(tmp_path / "split")]) == 0
    assert capsys.readouterr().out.strip() == "2"
    assert (tmp_path / "split" / "keys.1").read_text() == "u1\n"
    write_job(tmp_path, 1, {"u1": "5"})
    write_job(tmp_path, 2, {"u2": "6", "u3": "7"})
    assert main(["merge", "--out", str(tmp_path), "--nj", "2", "--split", str(tmp_path / "split")]) == 0
    assert (tmp_path / "1best_recog" / "token_int").read_text() == "u1 5\nu2 6\nu3 7\n"
    (tmp_path / "empty.scp").write_text("")
    with pytest.raises(InputError, match="no utterances"):
        split_keys(tmp_path / "empty.scp", 2, tmp_path / "split0")
