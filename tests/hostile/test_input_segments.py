"""A segment past the end of its recording (issue 13, item 3): one tolerance (``SEGMENT_TOLERANCE``, 0.05 s) for
data preparation (stage 1) and feature extraction (stage 3). Within it both stages pass (stage 3 clips); beyond it
stage 1 refuses with one line naming the segment, the yaml line and the fix, and stage 3 (on a hand-edited data dir)
refuses before extracting anything, naming the ``segments`` line -- not the wav.scp. Nothing is written; a re-run
after the fix completes. The real CLIs, in subprocesses."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

from salign.data.datadir import SEGMENT_TOLERANCE
from tests.data.conftest import SEGMENTS, make_split

# the third segment (ted_10.wav, 2.0 s long) starts at 0.25 s
OFFSET, TALK = 0.25, 2.0


def run(module: str, *args) -> Tuple[int, List[str]]:
    """``python -m module args`` -> (exit status, stderr lines)."""
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    return proc.returncode, proc.stderr.splitlines()


def one_error(rc: int, err: List[str], tool: str) -> str:
    errors = [ln for ln in err if ln.startswith("ERROR")]
    assert rc == 2 and len(errors) == 1 and errors[0].startswith(f"ERROR [{tool}]: "), err
    assert not any("Traceback" in ln for ln in err), err
    return errors[0]


def corpus(root: Path, overrun: float) -> Path:
    segs = list(SEGMENTS)
    o, _, spk, wav, en, de = segs[2]
    segs[2] = (o, round(TALK - o + overrun, 3), spk, wav, en, de)
    make_split(root / "en-de", "train", "de", segs)
    return root / "en-de" / "data" / "train" / "txt" / "train.yaml"


def prep(root: Path, out: Path) -> Tuple[int, List[str]]:
    return run("salign.bin.prep_mustc", "--mustc_root", root, "--tgt", "de", "--splits", "train", "--out", out)


def test_overrun_within_the_tolerance_passes_both_stages(tmp_path):
    corpus(tmp_path / "mustc", 0.03)
    rc, err = prep(tmp_path / "mustc", tmp_path / "data")
    assert rc == 0, err
    rc, err = run("salign.bin.make_fbank", "--data", tmp_path / "data" / "train", "--out", tmp_path / "fbank")
    assert rc == 0, err
    assert len((tmp_path / "fbank" / "feats.scp").read_text().splitlines()) == 3
    # progress with counts (and ETA until the end) in the shard's log
    assert [ln.split(", ")[0] for ln in err if "utterances (" in ln] == [
        "make_fbank: shard 1/1: 1/3 utterances (33%)", "make_fbank: shard 1/1: 2/3 utterances (67%)",
        "make_fbank: shard 1/1: 3/3 utterances (100%)"]
    assert "ETA" in err[0] and err[2].endswith(", done")


def test_overrun_beyond_the_tolerance_fails_at_stage_1_naming_the_yaml_line(tmp_path):
    over = SEGMENT_TOLERANCE + 0.01
    yaml_path = corpus(tmp_path / "mustc", over)
    rc, err = prep(tmp_path / "mustc", tmp_path / "data")
    line = one_error(rc, err, "prep_mustc")
    assert f"{yaml_path}:3: segment 'ted_10.wav offset 0.25 duration 1.81' ends at 2.060 s" in line, line
    assert f"more than the {SEGMENT_TOLERANCE} s tolerated" in line and "(fix: make its duration at most 1.800" in line
    assert not (tmp_path / "data").exists()
    yaml_path.write_text(yaml_path.read_text().replace("duration: 1.81,", "duration: 1.8,"))  # the fix it gave
    rc, err = prep(tmp_path / "mustc", tmp_path / "data")
    assert rc == 0, err


def test_overrun_in_an_edited_data_dir_fails_at_stage_3_before_extracting(tmp_path):
    corpus(tmp_path / "mustc", 0.0)
    rc, err = prep(tmp_path / "mustc", tmp_path / "data")
    assert rc == 0, err
    data, out = tmp_path / "data" / "train", tmp_path / "fbank"
    segments = data / "segments"
    good = segments.read_text()
    segments.write_text(good.replace("0.250 2.000", "0.250 2.060"))  # third line, sorted order
    for nj in ("1", "2"):  # all shards in one process; and the parallel jobs, each checking its own shard
        rc, err = run("salign.bin.make_fbank", "--data", data, "--out", out, "--nj", nj)
        line = one_error(rc, err, "make_fbank")
        assert f"{segments}:3: segment 'spk000010_ted_10_0000250_0002000' ends at 2.060 s" in line, line
        assert "wav.scp" not in line and "(fix: make it end by 2.050 s" in line
        assert not out.exists() or not list(out.rglob("*.ark")), "nothing extracted"
    if out.exists():
        rc, err = run("salign.bin.make_fbank", "--data", data, "--out", out, "--nj", "2", "--job", "1")
        assert rc == 0, err  # job 1's shard has no bad segment: it completes alone
    segments.write_text(good)
    rc, err = run("salign.bin.make_fbank", "--data", data, "--out", out, "--nj", "2")
    assert rc == 0, err
    assert len((out / "feats.scp").read_text().splitlines()) == 3


@pytest.mark.parametrize("seconds,ok", [(SEGMENT_TOLERANCE - 0.001, True), (SEGMENT_TOLERANCE + 0.001, False)])
def test_the_boundary_is_the_same_in_both_stages(tmp_path, seconds, ok):
    """The same overrun is accepted (or refused) by stage 1 and by stage 3 alike."""
    from salign.data.datadir import read_data_dir, validate_datadir
    from salign.feats.fbank import check_segments
    from salign.utils.io import InputError

    corpus(tmp_path / "mustc", 0.0)
    assert prep(tmp_path / "mustc", tmp_path / "data")[0] == 0
    data = tmp_path / "data" / "train"
    (data / "segments").write_text((data / "segments").read_text().replace("0.250 2.000",
                                                                            f"0.250 {TALK + seconds:.3f}"))
    (data / "utt2dur").write_text((data / "utt2dur").read_text().replace(" 1.750", f" {1.75 + seconds:.3f}"))
    segs, wav_scp = read_data_dir(data)
    results = []
    for check in (lambda: validate_datadir(data), lambda: check_segments(segs, wav_scp, segments=data / "segments")):
        try:
            check()
            results.append(True)
        except InputError:
            results.append(False)
    assert results == [ok, ok]
