"""Kaldi-compatible log-mel filterbank features, and segment loading from Kaldi data dirs.

Features follow Kaldi's ``compute-fbank-feats`` defaults (25 ms window, 10 ms shift, povey window, pre-emphasis 0.97,
DC removal, ``snip_edges=true``) with ``dither=0`` so that the same audio always gives the same features, and are
computed on the int16 sample scale like Kaldi (float audio in [-1, 1] is multiplied by 32768). They are computed
for the whole utterance at once with torch array operations (one framing, one batched real FFT, one mel matmul);
kaldi-native-fbank (``backend="knf"``, frame by frame in C++) is the reference they are tested against.

A data dir is read as a list of :class:`~salign.data.datadir.Segment` (utterance, recording, start, end, speed) by
:func:`salign.data.datadir.read_data_dir`; :func:`iter_waves` opens each recording once and cuts its segments in
time order, so a long talk is never re-read per segment and memory stays bounded by one segment.
"""
from __future__ import annotations

import os
from fractions import Fraction
from itertools import groupby
from typing import Dict, Iterable, Iterator, Optional, Tuple

import kaldi_native_fbank as knf
import numpy as np
import soundfile as sf

from salign.data.datadir import Segment, check_segment_end, read_data_dir
from salign.utils.io import InputError, PathLike

__all__ = ["FBANK_DIM", "SAMPLE_RATE", "Segment", "read_data_dir", "compute_fbank", "load_segment", "speed_perturb",
           "iter_waves", "iter_fbank", "kaldi_mel_banks", "fbank_options", "check_segments"]

FBANK_DIM = 80
SAMPLE_RATE = 16000
INT16_SCALE = 32768.0


def fbank_options(sr: int = SAMPLE_RATE, num_mel_bins: int = FBANK_DIM) -> knf.FbankOptions:
    """Kaldi ``compute-fbank-feats`` defaults with ``dither=0`` and ``num_mel_bins`` bins."""
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = float(sr)
    opts.frame_opts.dither = 0.0
    opts.frame_opts.frame_length_ms = 25.0
    opts.frame_opts.frame_shift_ms = 10.0
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = num_mel_bins
    return opts


_OPTS_CACHE: Dict[Tuple[int, int], knf.FbankOptions] = {}
_PLAN_CACHE: Dict[Tuple[int, int], "_FbankPlan"] = {}


def _mel_scale(freq: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log(1.0 + freq / 700.0)


def kaldi_mel_banks(sr: int = SAMPLE_RATE, num_mel_bins: int = FBANK_DIM, padded_length: int = 512,
                    low_freq: float = 20.0, high_freq: float = 0.0) -> np.ndarray:
    """Kaldi's mel filterbank (``MelBanks``, no VTLN) as a dense (padded_length // 2, num_mel_bins) float64 matrix.

    Triangles are linear in the mel domain (mel = 1127 ln(1 + f / 700)) between ``low_freq`` and ``high_freq``
    (<= 0: offset from Nyquist), on the FFT bins 0 .. padded_length / 2 - 1 (Kaldi leaves out the Nyquist bin).
    """
    nyquist = 0.5 * sr
    high = high_freq if high_freq > 0 else nyquist + high_freq
    if num_mel_bins < 3 or not 0.0 <= low_freq < high <= nyquist:
        raise ValueError(f"bad mel banks: {num_mel_bins} bins, {low_freq}-{high} Hz at {sr} Hz")
    mel_low, mel_high = _mel_scale(np.float64(low_freq)), _mel_scale(np.float64(high))
    delta = (mel_high - mel_low) / (num_mel_bins + 1)
    mel = _mel_scale(sr / padded_length * np.arange(padded_length // 2))[:, None]  # (bins, 1)
    left = mel_low + np.arange(num_mel_bins)[None, :] * delta  # (1, num_mel_bins)
    center, right = left + delta, left + 2 * delta
    up, down = (mel - left) / (center - left), (right - mel) / (right - center)
    return np.where((mel > left) & (mel < right), np.where(mel <= center, up, down), 0.0)


class _FbankPlan:
    """Constants of one (sr, num_mel_bins) configuration, built once: framing, povey window, mel matrix."""

    def __init__(self, sr: int, num_mel_bins: int):
        import torch

        self.length = int(sr * 0.001 * 25.0)  # Kaldi's WindowSize / WindowShift (truncating, like Kaldi)
        self.shift = int(sr * 0.001 * 10.0)
        self.padded = 1 << (self.length - 1).bit_length()  # round_to_power_of_two
        self.num_mel_bins = num_mel_bins
        i = np.arange(self.length)
        window = (0.5 - 0.5 * np.cos(2 * np.pi * i / (self.length - 1))) ** 0.85  # povey
        self.window = torch.from_numpy(window.astype(np.float32))
        banks = kaldi_mel_banks(sr, num_mel_bins, self.padded).astype(np.float32)
        # the rfft output viewed as real is (frames, padded + 2) = re, im interleaved: |X|^2 @ banks is
        # (re^2, im^2 interleaved) @ (banks with each row twice); the Nyquist bin's two rows stay zero
        mel2 = np.zeros((self.padded + 2, num_mel_bins), np.float32)
        mel2[0:self.padded:2] = banks
        mel2[1:self.padded:2] = banks
        self.mel2 = torch.from_numpy(mel2)


def _fbank_torch(samples: np.ndarray, plan: _FbankPlan) -> np.ndarray:
    import torch

    length, shift = plan.length, plan.shift
    n = samples.shape[0]
    if n < length:
        return np.zeros((0, plan.num_mel_bins), dtype=np.float32)
    x = torch.from_numpy(samples)
    frames = x.unfold(0, length, shift)  # (F, length) view, snip_edges=True
    num_frames = frames.shape[0]
    # Per frame Kaldi does x -= mean(x); y[i] = x[i] - 0.97 x[i-1], y[0] = x[0] - 0.97 x[0]; y *= window. The
    # pre-emphasis is linear and maps a constant c to 0.03 c, so y = (pre-emphasised signal framed - 0.03 mean) *
    # window, with the pre-emphasis done once on the whole signal and column 0 (0.03 x[0]) patched.
    c = frames.sum(1).mul_(0.03 / length)
    z = torch.empty_like(x)
    z[0] = 0.0
    torch.sub(x[1:], x[:-1], alpha=0.97, out=z[1:])
    buf = torch.zeros(num_frames, plan.padded)  # zero padding to the FFT length
    body = buf[:, :length]
    torch.sub(z.unfold(0, length, shift), c[:, None], out=body)
    buf[:, 0] = frames[:, 0] * 0.03 - c
    body.mul_(plan.window)
    spec = torch.view_as_real(torch.fft.rfft(buf)).reshape(num_frames, plan.padded + 2)
    mel = spec.square_() @ plan.mel2  # power spectrum through the mel banks
    return mel.clamp_min_(_FLT_EPSILON).log_().numpy()


_FLT_EPSILON = float(np.finfo(np.float32).eps)


def _fbank_knf(samples: np.ndarray, sr: int, num_mel_bins: int) -> np.ndarray:
    key = (int(sr), int(num_mel_bins))
    if key not in _OPTS_CACHE:
        _OPTS_CACHE[key] = fbank_options(*key)
    fb = knf.OnlineFbank(_OPTS_CACHE[key])
    fb.accept_waveform(float(sr), samples)  # one call per utterance: the C++ side frames and transforms everything
    fb.input_finished()
    n = fb.num_frames_ready
    if n == 0:
        return np.zeros((0, num_mel_bins), dtype=np.float32)
    out = np.empty((n, num_mel_bins), dtype=np.float32)
    get = fb.get_frame
    for i in range(n):  # the binding only exposes frames one by one (a copy of 80 floats each)
        out[i] = get(i)
    return out


def compute_fbank(wave: np.ndarray, sr: int = SAMPLE_RATE, num_mel_bins: int = FBANK_DIM,
                  backend: str = "torch") -> np.ndarray:
    """Log-mel fbank of a mono waveform: float32 array of shape (frames, num_mel_bins).

    ``wave`` is float in [-1, 1] (soundfile's default) or an integer PCM array; either way the features are those of
    the int16-scaled signal, as Kaldi computes them. A wave shorter than one 25 ms window gives 0 frames.
    ``backend="torch"`` (default) computes all frames at once; ``backend="knf"`` uses kaldi-native-fbank frame by
    frame (the reference: the two agree to float32 rounding, ~1e-5 on average in log-mel).
    """
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"compute_fbank expects a 1-D mono waveform, got shape {wave.shape}")
    if np.issubdtype(wave.dtype, np.integer):
        samples = wave.astype(np.float32)
    else:
        samples = np.asarray(wave, dtype=np.float32) * np.float32(INT16_SCALE)
    if backend == "knf":
        return _fbank_knf(samples, sr, num_mel_bins)
    if backend != "torch":
        raise ValueError(f"unknown fbank backend '{backend}' (torch or knf)")
    key = (int(sr), int(num_mel_bins))
    plan = _PLAN_CACHE.get(key)
    if plan is None:
        plan = _PLAN_CACHE[key] = _FbankPlan(*key)
    return _fbank_torch(samples, plan)


def speed_perturb(wave: np.ndarray, factor: float) -> np.ndarray:
    """Change speed like ``sox speed FACTOR`` (tempo and pitch): the output has ``len / factor`` samples."""
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    if abs(factor - 1.0) < 1e-9:
        return np.asarray(wave, dtype=np.float32)
    from scipy.signal import resample_poly  # imported here: scipy.signal alone costs ~1.5 s of CLI start-up

    ratio = Fraction(1.0 / factor).limit_denominator(1000)  # up / down
    out = resample_poly(np.asarray(wave, dtype=np.float32), ratio.numerator, ratio.denominator)
    return out.astype(np.float32, copy=False)


def check_audio_path(path: str, rec: str, wav_scp: PathLike) -> str:
    """``path`` if it names an existing audio file (not a command pipe); else :class:`InputError`."""
    if path.endswith("|"):
        raise InputError(f"recording '{rec}' is a command pipe; make_fbank reads plain audio files", wav_scp,
                         fix="write wav paths in wav.scp and put speed factors in utt2speed")
    if not os.path.isfile(path):
        raise InputError(f"recording '{rec}': audio file '{path}' does not exist", wav_scp,
                         fix="fix the path in wav.scp or re-run data preparation")
    return path


def _open(path: str, rec: str, sr: int, wav_scp: PathLike) -> sf.SoundFile:
    try:
        f = sf.SoundFile(path)
    except (RuntimeError, OSError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        raise InputError(f"recording '{rec}': cannot read audio '{path}': {exc}", wav_scp,
                         fix="re-create the file as 16 kHz mono wav") from None
    if f.samplerate != sr:
        f.close()
        raise InputError(f"recording '{rec}': '{path}' has sample rate {f.samplerate}, expected {sr}", wav_scp,
                         fix=f"resample it, e.g. sox IN -r {sr} -c 1 OUT.wav")
    return f


def check_segments(segs: Iterable[Segment], wav_scp: Dict[str, str], sr: int = SAMPLE_RATE,
                   where: PathLike = "wav.scp", segments: Optional[PathLike] = None) -> None:
    """Before any audio is decoded: every recording of ``segs`` opens as ``sr`` Hz audio and no segment ends past its
    recording by more than the tolerance (:func:`salign.data.datadir.check_segment_end`, the rule of data
    preparation), so a bad segment fails at once, naming its ``segments`` line, not after hours of extraction."""
    seconds: Dict[str, float] = {}
    for seg in segs:
        if seg.rec not in seconds:
            path = check_audio_path(wav_scp[seg.rec], seg.rec, where)
            with _open(path, seg.rec, sr, where) as f:
                seconds[seg.rec] = f.frames / sr
        if seg.end is not None:
            check_segment_end(seg.utt, seg.start, seg.end, wav_scp[seg.rec], seconds[seg.rec], segments or where,
                              (seg.line or None) if segments else None)


def _cut(f: sf.SoundFile, seg: Segment, path: str, sr: int, where: PathLike,
         segments: Optional[PathLike] = None) -> np.ndarray:
    total = f.frames
    start = int(round(seg.start * sr))
    end = total if seg.end is None else int(round(seg.end * sr))
    if seg.end is not None and end > total:  # up to the tolerance of data preparation: clipped to the end
        check_segment_end(seg.utt, seg.start, seg.end, path, total / sr, segments or where,
                          (seg.line or None) if segments else None)
        end = total
    if start < 0 or end - start <= 0:
        raise InputError(f"utterance '{seg.utt}': empty segment ({seg.start} to {seg.end} s)", where,
                         fix="remove the utterance or fix its times")
    f.seek(start)
    wave = f.read(end - start, dtype="float32", always_2d=True)
    if wave.shape[0] != end - start:
        raise InputError(f"utterance '{seg.utt}': could only read {wave.shape[0]} of {end - start} samples from "
                         f"'{path}'", where, fix="the audio file is truncated; re-create it")
    if wave.shape[1] != 1:
        raise InputError(f"recording '{seg.rec}': '{path}' has {wave.shape[1]} channels, expected mono", where,
                         fix="convert it, e.g. sox IN -c 1 OUT.wav")
    return speed_perturb(wave[:, 0], seg.speed)


def load_segment(path: PathLike, start: float = 0.0, end: Optional[float] = None, speed: float = 1.0,
                 sr: int = SAMPLE_RATE, utt: str = "utterance") -> np.ndarray:
    """Read ``[start, end]`` seconds of a mono audio file (whole file if ``end`` is None), then apply ``speed``.

    Returns float32 samples in [-1, 1]. Raises :class:`InputError` for an unreadable file, a wrong sample rate, a
    segment past the end of the file or an empty segment.
    """
    path = str(path)
    check_audio_path(path, utt, path)
    with _open(path, utt, sr, path) as f:
        return _cut(f, Segment(utt, utt, start, end, speed), path, sr, path)


def iter_waves(segs: Iterable[Segment], wav_scp: Dict[str, str], sr: int = SAMPLE_RATE,
               where: PathLike = "wav.scp", segments: Optional[PathLike] = None
               ) -> Iterator[Tuple[Segment, np.ndarray]]:
    """Yield ``(segment, samples)`` grouped by recording: each audio file is opened once, segments cut in order.
    ``where``: the ``wav.scp`` named in audio errors; ``segments``: the file named (with the line) in segment ones."""
    ordered = sorted(segs, key=lambda s: (s.rec, s.start, s.utt))
    for rec, group in groupby(ordered, key=lambda s: s.rec):
        path = check_audio_path(wav_scp[rec], rec, where)
        with _open(path, rec, sr, where) as f:
            for seg in group:
                yield seg, _cut(f, seg, path, sr, where, segments)


def iter_fbank(segs: Iterable[Segment], wav_scp: Dict[str, str], sr: int = SAMPLE_RATE,
               num_mel_bins: int = FBANK_DIM, where: PathLike = "wav.scp", segments: Optional[PathLike] = None,
               ) -> Iterator[Tuple[str, np.ndarray]]:
    """Yield ``(utt, features)`` for each segment (recording order); an utterance too short for one frame fails."""
    for seg, wave in iter_waves(segs, wav_scp, sr, where, segments):
        feats = compute_fbank(wave, sr, num_mel_bins)
        if feats.shape[0] == 0:
            raise InputError(f"utterance '{seg.utt}' is shorter than one 25 ms frame ({len(wave)} samples)", where,
                             fix="drop utterances shorter than 0.1 s in data preparation")
        yield seg.utt, feats
