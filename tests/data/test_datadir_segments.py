"""The one data-dir parser (salign/data/datadir.py): segments, end = -1, speed factors, the overrun tolerance."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from salign.data.datadir import (
    SEGMENT_TOLERANCE,
    Segment,
    is_perturbed,
    parse_segment,
    read_data_dir,
    read_speeds,
    validate_datadir,
)
from salign.feats.fbank import iter_waves
from salign.utils.io import InputError


def _dir(tmp_path: Path, segments: str, seconds: float = 2.0, speeds: str = "") -> Path:
    data = tmp_path / "data"
    data.mkdir()
    sf.write(tmp_path / "r.wav", np.zeros(int(seconds * 16000), np.int16), 16000, subtype="PCM_16")
    (data / "wav.scp").write_text(f"r {tmp_path / 'r.wav'}\n")
    (data / "segments").write_text(segments)
    utts = [line.split()[0] for line in segments.splitlines() if line.strip()]
    (data / "utt2spk").write_text("".join(f"{u} r\n" for u in utts))
    (data / "spk2utt").write_text("r " + " ".join(utts) + "\n")
    if speeds:
        (data / "utt2speed").write_text(speeds)
    return data


def test_parse_segment_rules():
    assert parse_segment("u", "r 0.5 1.25", "segments", 1) == ("r", 0.5, 1.25)
    assert parse_segment("u", "r 0.5 -1", "segments", 1) == ("r", 0.5, None)
    for value, match in [("r 1 2 3", "expected 'utt rec start end'"), ("r a 2", "times must be numbers"),
                         ("r 2 2", "empty segment"), ("r -1 2", "negative start"), ("r -1 -1", "negative start")]:
        with pytest.raises(InputError, match=rf"segments:7: .*{match}"):
            parse_segment("u", value, "segments", 7)


def test_read_data_dir_end_minus_one_and_speeds(tmp_path):
    data = _dir(tmp_path, "r-a r 0.0 1.0\nr-b r 1.0 -1\n", speeds="r-a 0.9\nr-b 1\n")
    segs, wav_scp = read_data_dir(data)
    assert segs == [Segment("r-a", "r", 0.0, 1.0, 0.9), Segment("r-b", "r", 1.0, None, 1.0)]
    assert read_speeds(data) == {"r-a": 0.9, "r-b": 1.0}
    assert is_perturbed(read_speeds(data), "r-a") and not is_perturbed(read_speeds(data), "r-b")
    waves = {s.utt: w for s, w in iter_waves(segs, wav_scp)}
    assert len(waves["r-b"]) == 16000  # to the end of the 2 s file
    assert validate_datadir(data) == 2  # the other parser accepts end = -1 too


def test_read_data_dir_sorts_and_validate_wants_sorted(tmp_path):
    data = _dir(tmp_path, "r-b r 1.0 -1\n\nr-a r 0.0 1.0\n")
    assert [s.utt for s in read_data_dir(data)[0]] == ["r-a", "r-b"]
    with pytest.raises(InputError, match=r"segments:3: not sorted: 'r-a' after 'r-b'"):
        validate_datadir(data)


def test_bad_speed_factor(tmp_path):
    data = _dir(tmp_path, "r-a r 0.0 1.0\n", speeds="r-a 0\n")
    with pytest.raises(InputError, match=r"utt2speed:1: utterance 'r-a': bad speed factor '0'"):
        read_data_dir(data)


@pytest.mark.parametrize("overrun,ok", [(SEGMENT_TOLERANCE - 0.01, True), (SEGMENT_TOLERANCE + 0.01, False)])
def test_one_overrun_tolerance_for_prep_and_features(tmp_path, overrun, ok):
    data = _dir(tmp_path, f"r-a r 1.0 {2.0 + overrun:.3f}\n")
    segs, wav_scp = read_data_dir(data)
    if ok:  # stage 1 accepts it, stage 3 clips it to the end of the file
        assert validate_datadir(data) == 1
        assert len(next(iter_waves(segs, wav_scp))[1]) == 16000
    else:  # stage 1 rejects it, so stage 3 never sees it; stage 3 alone would refuse it as well
        with pytest.raises(InputError, match="after the end"):
            validate_datadir(data)
        with pytest.raises(InputError, match="segment 'r-a' ends at 2.060 s, after the end"):
            next(iter_waves(segs, wav_scp))
