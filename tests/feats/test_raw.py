"""Raw-audio dumps (make_raw, --feats_type raw): exact segment cuts and speed perturbation, sample counts, ESPnet's
sound loader, shards and merge, resumption, one-line errors."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from salign.bin import make_raw
from salign.feats.fbank import speed_perturb
from salign.feats.raw_dump import to_pcm16
from tests.conftest import cli_error
from tests.feats.test_fbank import SR, make_data, one_and_three_shards


def _table(path: Path) -> dict:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


def _direct(wav: Path, start: float, end: float) -> np.ndarray:
    """The segment read straight from the recording as int16 (what the dump must hold for speed 1)."""
    x, rate = sf.read(wav, dtype="int16")
    assert rate == SR
    return x[int(round(start * SR)):int(round(end * SR))]


def test_segments_are_cut_exactly_and_listed_in_samples(tmp_path):
    data = make_data(tmp_path)
    out = tmp_path / "raw"
    make_raw.main(["--data", str(data), "--out", str(out), "--nj", "2"])
    scp, n = _table(out / "wav.scp"), _table(out / "utt2num_samples")
    assert list(scp) == sorted(scp) == [f"rec{r}_{k:02d}" for r in range(3) for k in range(4)]
    for utt, path in scp.items():
        r, k = int(utt[3]), int(utt[5:])
        assert Path(path).is_absolute() and path.endswith(f"/{utt}.flac")
        got, rate = sf.read(path, dtype="int16")
        assert rate == SR and sf.info(path).channels == 1 and sf.info(path).subtype == "PCM_16"
        np.testing.assert_array_equal(got, _direct(tmp_path / f"rec{r}.wav", k * 3.0, k * 3.0 + 2.5))
        assert int(n[utt]) == len(got) == 40000
    assert (out / ".done").is_file()


def test_speed_perturbation_matches_a_direct_computation(tmp_path):
    data = make_data(tmp_path, n_rec=1, n_seg=3, speeds={"rec0_00": 0.9, "rec0_01": 1.1})
    out = tmp_path / "raw"
    make_raw.main(["--data", str(data), "--out", str(out)])
    scp, n = _table(out / "wav.scp"), _table(out / "utt2num_samples")
    for utt, factor, start in (("rec0_00", 0.9, 0.0), ("rec0_01", 1.1, 3.0), ("rec0_02", 1.0, 6.0)):
        seg = _direct(tmp_path / "rec0.wav", start, start + 2.5).astype(np.float32) / 32768
        want = np.clip(np.rint(speed_perturb(seg, factor).astype(np.float64) * 32768), -32768, 32767)
        got, _ = sf.read(scp[utt], dtype="int16")
        np.testing.assert_array_equal(got, want.astype(np.int16))
        assert int(n[utt]) == len(got)
        assert abs(len(got) - 40000 / factor) <= 1


def test_pcm16_rounds_and_clips():
    x = np.array([0.0, 1 / 32768, -1.0, 0.99999, 1.5, -1.5, 0.4 / 32768, 0.6 / 32768], dtype=np.float32)
    np.testing.assert_array_equal(to_pcm16(x), [0, 1, -32768, 32767, 32767, -32768, 0, 1])


def test_espnet_sound_loader_reads_the_dump(tmp_path):
    from espnet2.train.dataset import sound_loader

    data = make_data(tmp_path, n_rec=1, n_seg=2)
    out = tmp_path / "raw"
    make_raw.main(["--data", str(data), "--out", str(out), "--audio_format", "wav"])
    loader = sound_loader(str(out / "wav.scp"), float_dtype="float32")
    x = loader["rec0_01"]
    assert x.dtype == np.float32 and x.ndim == 1
    np.testing.assert_array_equal(x, _direct(tmp_path / "rec0.wav", 3.0, 5.5) / np.float32(32768))
    assert _table(out / "wav.scp")["rec0_01"].endswith(".wav")


def test_shards_then_merge_equal_single_job_and_rerun_is_skipped(tmp_path, capsys):
    data = make_data(tmp_path)
    one, three = one_and_three_shards(make_raw, data, tmp_path)
    assert (one / "utt2num_samples").read_text() == (three / "utt2num_samples").read_text()
    a, b = _table(one / "wav.scp"), _table(three / "wav.scp")
    assert list(a) == list(b) and "/split3/format.3/" in b["rec2_03"]
    for k in a:
        np.testing.assert_array_equal(sf.read(a[k], dtype="int16")[0], sf.read(b[k], dtype="int16")[0])
    capsys.readouterr()
    make_raw.main(["--data", str(data), "--out", str(three), "--nj", "3"])
    err = capsys.readouterr().err
    assert err.count("already complete") == 3 and "already merged" in err


def test_interrupted_shard_is_redone(tmp_path, capsys):
    data = make_data(tmp_path)
    out = tmp_path / "raw"
    args = ["--data", str(data), "--out", str(out), "--nj", "2", "--job", "1"]
    make_raw.main(args)
    split = out / "split2"
    flac = split / "format.1" / "rec0_00.flac"
    good = flac.read_bytes()
    flac.write_bytes(good[:100])  # an interruption during a later run: a temporary directory left behind
    (split / ".format.1.tmp").mkdir()
    (split / ".format.1.tmp" / "rec0_00.flac").write_bytes(b"partial")
    capsys.readouterr()
    make_raw.main(args)
    assert "already complete" not in capsys.readouterr().err
    assert flac.read_bytes() == good and not (split / ".format.1.tmp").exists()


def _break(problem: str, data: Path, wav: Path) -> list:
    """Spoil the one-recording data dir for ``problem``; returns extra command-line arguments."""
    if problem == "rate":
        sf.write(wav, sf.read(wav)[0][::2], 8000)
    elif problem == "missing":
        wav.unlink()
    elif problem == "slash":
        (data / "segments").write_text("rec0/00 rec0 0.0 2.5\n")
    return ["--nj", "0"] if problem == "nj" else []


BAD_INPUT = {"rate": r"sample rate 8000, expected 16000", "missing": r"does not exist",
             "slash": r"utterance id 'rec0/00' cannot name a file", "nj": r"--nj must be >= 1"}


@pytest.mark.parametrize("problem", sorted(BAD_INPUT))
def test_bad_input_is_one_line_error(tmp_path, capsys, problem):
    extra = _break(problem, make_data(tmp_path, n_rec=1, n_seg=2), tmp_path / "rec0.wav")
    err = cli_error(capsys, make_raw.main, ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "o"), *extra])
    assert re.search(BAD_INPUT[problem], err), err
    assert not (tmp_path / "o" / "wav.scp").exists()
