"""Fbank extraction: values vs torchaudio's Kaldi port, ark/scp readable by kaldiio and ESPnet, CMVN, shards."""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from salign.bin import make_fbank
from salign.feats.fbank import compute_fbank, load_segment, read_data_dir
from tests.conftest import cli_error

SR = 16000


def _tone(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.RandomState(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * (200 + 300 * rng.rand()) * t) + 0.05 * rng.randn(t.size)
    return x.astype(np.float32)


def make_data(root: Path, n_rec: int = 3, n_seg: int = 4, speeds: dict | None = None) -> Path:
    """A small data dir: n_rec 14 s recordings, each with n_seg 2.5 s segments."""
    data = root / "data"
    data.mkdir(parents=True)
    with (data / "wav.scp").open("w") as scp, (data / "segments").open("w") as segs:
        for r in range(n_rec):
            wav = root / f"rec{r}.wav"
            sf.write(wav, _tone(14.0, r), SR, subtype="PCM_16")
            scp.write(f"rec{r} {wav}\n")
            for k in range(n_seg):
                segs.write(f"rec{r}_{k:02d} rec{r} {k * 3.0:.2f} {k * 3.0 + 2.5:.2f}\n")
    if speeds:
        (data / "utt2speed").write_text("".join(f"{u} {f}\n" for u, f in speeds.items()))
    return data


def test_matches_torchaudio_kaldi():
    kaldi = pytest.importorskip("torchaudio.compliance.kaldi", reason="torchaudio not importable")
    import torch

    x = _tone(3.0)
    ref = kaldi.fbank(torch.from_numpy(x * 32768)[None], num_mel_bins=80, dither=0.0,
                      sample_frequency=SR, frame_length=25, frame_shift=10, snip_edges=True).numpy()
    ours = compute_fbank(x)
    assert ours.dtype == np.float32 and ours.shape == ref.shape == (298, 80)
    assert np.abs(ours - ref).mean() < 1e-2


def test_int16_input_and_short_wave():
    x = _tone(1.0)
    np.testing.assert_allclose(compute_fbank((x * 32768).astype(np.int16)), compute_fbank(x), atol=1e-2)
    assert compute_fbank(np.zeros(100, np.float32)).shape == (0, 80)


def test_ark_scp_readable_by_kaldiio_and_espnet(tmp_path):
    data = make_data(tmp_path)
    out = tmp_path / "fbank"
    make_fbank.main(["--data", str(data), "--out", str(out), "--nj", "2"])
    feats = kaldiio.load_scp(str(out / "feats.scp"))
    assert sorted(feats.keys()) == [f"rec{r}_{k:02d}" for r in range(3) for k in range(4)]
    wave = load_segment(tmp_path / "rec1.wav", 3.0, 5.5)
    np.testing.assert_array_equal(feats["rec1_01"], compute_fbank(wave))
    for line in (out / "feats.scp").read_text().splitlines():
        assert Path(line.split()[1].rsplit(":", 1)[0]).is_absolute()
    frames = dict(line.split() for line in (out / "utt2num_frames").read_text().splitlines())
    assert frames["rec1_01"] == str(feats["rec1_01"].shape[0])
    assert not (out / "feats_shape").exists()  # shape files: stage 10 only
    from espnet2.train.dataset import kaldi_loader

    loader = kaldi_loader(str(out / "feats.scp"))
    np.testing.assert_array_equal(loader["rec2_03"], feats["rec2_03"])


def test_cmvn_matches_numpy_and_global_mvn(tmp_path):
    data = make_data(tmp_path)
    out = tmp_path / "fbank"
    make_fbank.main(["--data", str(data), "--out", str(out), "--nj", "3"])
    allf = np.concatenate([m for _, m in kaldiio.load_scp_sequential(str(out / "feats.scp"))]).astype(np.float64)
    st = np.load(out / "cmvn.npz")
    assert int(st["count"]) == allf.shape[0]
    np.testing.assert_allclose(st["sum"] / st["count"], allf.mean(0), rtol=1e-6)
    np.testing.assert_allclose(st["sum_square"] / st["count"] - (st["sum"] / st["count"]) ** 2, allf.var(0),
                               rtol=1e-5)
    import torch
    from espnet2.layers.global_mvn import GlobalMVN

    mvn = GlobalMVN(str(out / "cmvn.npz"))
    x = torch.from_numpy(allf.astype(np.float32))[None]
    y, _ = mvn(x.clone())
    assert abs(float(y.mean())) < 1e-3 and abs(float(y.std()) - 1.0) < 1e-2


def test_speed_changes_frame_count(tmp_path):
    data = make_data(tmp_path, n_rec=1, n_seg=2, speeds={"rec0_00": 0.9, "rec0_01": 1.1})
    segs, _ = read_data_dir(data)
    assert [s.speed for s in segs] == [0.9, 1.1]
    out = tmp_path / "fbank"
    make_fbank.main(["--data", str(data), "--out", str(out)])
    n = dict(line.split() for line in (out / "utt2num_frames").read_text().splitlines())
    base = compute_fbank(load_segment(tmp_path / "rec0.wav", 0.0, 2.5)).shape[0]  # 248 frames
    assert abs(int(n["rec0_00"]) - base / 0.9) <= 3
    assert abs(int(n["rec0_01"]) - base / 1.1) <= 3


def one_and_three_shards(tool, data: Path, root: Path) -> Tuple[Path, Path]:
    """A stage-3 ``tool`` on ``data`` as one job, and as three shards then the merge: the two output dirs."""
    one, three = root / "one", root / "three"
    tool.main(["--data", str(data), "--out", str(one), "--nj", "1"])
    for j in (1, 2, 3):
        tool.main(["--data", str(data), "--out", str(three), "--nj", "3", "--job", str(j)])
    tool.main(["--data", str(data), "--out", str(three), "--nj", "3", "--merge"])
    return one, three


def test_shards_then_merge_equal_single_job(tmp_path):
    one, three = one_and_three_shards(make_fbank, make_data(tmp_path), tmp_path)
    a, b = kaldiio.load_scp(str(one / "feats.scp")), kaldiio.load_scp(str(three / "feats.scp"))
    assert list(a.keys()) == list(b.keys())
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert (one / "utt2num_frames").read_text() == (three / "utt2num_frames").read_text()
    sa, sb = np.load(one / "cmvn.npz"), np.load(three / "cmvn.npz")
    assert int(sa["count"]) == int(sb["count"])
    np.testing.assert_allclose(sa["sum"], sb["sum"], rtol=1e-9)
    assert (three / ".done").is_file()


def test_interrupted_shard_is_redone(tmp_path, capsys):
    data = make_data(tmp_path)
    out = tmp_path / "fbank"
    args = ["--data", str(data), "--out", str(out), "--nj", "2", "--job", "1"]
    make_fbank.main(args)
    make_fbank.main(args)
    assert "already complete" in capsys.readouterr().err
    ark = out / "split2" / "feats.1.ark"
    good = ark.read_bytes()
    ark.write_bytes(good[:100])  # an interruption during a later run: truncated ark, temp file left behind
    (out / "split2" / ".feats.1.ark.tmp").write_bytes(b"partial")
    make_fbank.main(args)
    assert "already complete" not in capsys.readouterr().err
    assert ark.read_bytes() == good
    assert not (out / "split2" / ".feats.1.ark.tmp").exists()


@pytest.mark.parametrize("problem,match", [
    ("beyond", r"segments:\d+: segment 'rec0_09' ends at .* after the end"),
    ("rate", r"sample rate 8000, expected 16000"),
    ("unreadable", r"cannot read audio"),
    ("empty", r"rec0_00.*empty segment"),
    ("missing", r"does not exist"),
])
def test_bad_input_is_one_line_error(tmp_path, capsys, problem, match):
    data = make_data(tmp_path, n_rec=1, n_seg=2)
    wav = tmp_path / "rec0.wav"
    if problem == "beyond":
        with (data / "segments").open("a") as f:
            f.write("rec0_09 rec0 13.0 15.0\n")
    elif problem == "rate":
        sf.write(wav, _tone(14.0)[::2], 8000)
    elif problem == "unreadable":
        wav.write_bytes(b"not a wav file at all")
    elif problem == "empty":
        (data / "segments").write_text("rec0_00 rec0 2.0 2.0\n")
    elif problem == "missing":
        wav.unlink()
    import re

    err = cli_error(capsys, make_fbank.main, ["--data", str(data), "--out", str(tmp_path / "o")])
    assert re.search(match, err), err
    assert not (tmp_path / "o" / "feats.scp").exists()


def _pcm(x: np.ndarray) -> np.ndarray:
    """On the 16-bit grid, like audio read from a wav (an unquantised pure tone has bins at float32 round-off)."""
    return (np.round(x * 32768) / 32768).astype(np.float32)


def _signals():
    """(name, wave) pairs: noise, tones, a DC offset, at lengths on and off the frame grid (1 frame: 400-559)."""
    rng = np.random.RandomState(7)
    for n in (400, 401, 559, 560, 16000, 16123, 48000, 80071):
        t = np.arange(n) / SR
        yield f"noise{n}", _pcm(0.1 * rng.randn(n))
        yield f"sine{n}", _pcm(0.5 * np.sin(2 * np.pi * 440.0 * t))
        yield f"chirp_dc{n}", _pcm(0.2 + 0.3 * np.sin(2 * np.pi * (100 + 2000 * t) * t) + 0.01 * rng.randn(n))
    yield "speechlike", _tone(3.0, 3)
    yield "int16", (_tone(2.0, 4) * 32768).astype(np.int16)


@pytest.mark.parametrize("num_mel_bins", [80, 23])
def test_vectorised_matches_kaldi_native_fbank(num_mel_bins):
    for name, wave in _signals():
        ours = compute_fbank(wave, SR, num_mel_bins)
        ref = compute_fbank(wave, SR, num_mel_bins, backend="knf")
        assert ours.dtype == np.float32 and ours.shape == ref.shape, name
        assert ours.shape[0] == 1 + (len(wave) - 400) // 160, name
        diff = np.abs(ours - ref)
        # both compute in float32: ~5e-6 apart on average; bins near the float32 FFT noise floor (far from a pure
        # tone, ~100 dB down; near-empty low bins) differ up to ~5e-3, each side as far from a float64 reference
        assert diff.max() < 1e-2 and diff.mean() < 5e-4, (name, diff.max(), diff.mean())
        if not name.startswith("sine"):
            assert diff.mean() < 3e-5, (name, diff.mean())


def test_short_waves_and_backend_switch():
    for n in (0, 1, 399):
        for backend in ("torch", "knf"):
            assert compute_fbank(np.zeros(n, np.float32), backend=backend).shape == (0, 80)
    assert compute_fbank(np.ones(400, np.float32)).shape == (1, 80)
    silent = compute_fbank(np.zeros(800, np.float32))  # all-zero frames: log(FLT_EPSILON) like Kaldi
    np.testing.assert_allclose(silent, np.log(np.finfo(np.float32).eps), rtol=1e-6)
    np.testing.assert_allclose(silent, compute_fbank(np.zeros(800, np.float32), backend="knf"), rtol=1e-6)
    with pytest.raises(ValueError, match="backend"):
        compute_fbank(np.zeros(800, np.float32), backend="nope")
    with pytest.raises(ValueError, match="1-D"):
        compute_fbank(np.zeros((2, 800), np.float32))


def test_stacked_dump_equals_the_stack_preencoder(tmp_path, capsys):
    """--stack 2: 160-dim frames at 20 ms equal to --preencoder stack on the 80-dim dump (the last partial group
    repeats the last frame instead of zero padding), CMVN of the stacked frames, a stamp that redoes a dump made
    without stacking; --stack 0 is a one-line error."""
    import torch

    from salign.st.stack import FrameStack

    data = make_data(tmp_path, n_rec=1, n_seg=2)
    plain, stacked = tmp_path / "plain", tmp_path / "stacked"
    make_fbank.main(["--data", str(data), "--out", str(plain)])
    make_fbank.main(["--data", str(data), "--out", str(stacked), "--stack", "2"])
    a, b = kaldiio.load_scp(str(plain / "feats.scp")), kaldiio.load_scp(str(stacked / "feats.scp"))
    for k in a:
        x = torch.from_numpy(a[k])[None]
        ref, _ = FrameStack(80, 2)(x, torch.tensor([x.shape[1]]))
        t = x.shape[1]
        assert b[k].shape == (-(-t // 2), 160)
        full = t // 2
        np.testing.assert_array_equal(b[k][:full], ref[0, :full].numpy())
        if t % 2:
            np.testing.assert_array_equal(b[k][-1], np.concatenate([a[k][-1], a[k][-1]]))
    n = dict(line.split() for line in (stacked / "utt2num_frames").read_text().splitlines())
    assert {k: int(v) for k, v in n.items()} == {k: b[k].shape[0] for k in b}
    allf = np.concatenate([b[k] for k in sorted(b)]).astype(np.float64)
    st = np.load(stacked / "cmvn.npz")
    assert int(st["count"]) == allf.shape[0]
    np.testing.assert_allclose(st["sum"], allf.sum(0), rtol=1e-6)
    # the plain dump's stamp does not stand for a stacked one: re-running with --stack 2 redoes it
    capsys.readouterr()
    make_fbank.main(["--data", str(data), "--out", str(plain), "--stack", "2"])
    assert kaldiio.load_scp(str(plain / "feats.scp"))[k].shape[1] == 160
    capsys.readouterr()
    err = cli_error(capsys, make_fbank.main, ["--data", str(data), "--out", str(tmp_path / "x"), "--stack", "0"])
    assert "--stack 0" in err
