"""Kaldi-style data directories, the one parser: segments, speed factors, subset, speed-perturbed copies, validation.

A data dir holds ``wav.scp`` (recording -> wav path), ``segments`` (utt rec start end), ``utt2spk``, ``spk2utt``,
``utt2dur``, ``text.<lang>`` files and optionally ``utt2speed`` (utt -> speed factor, honoured by the feature
extractor). Every file is read and written by :mod:`salign.data.kaldi` (its rules: blank lines skipped, duplicate
keys an error naming file:line, values stripped, a UTF-8 BOM ignored), sorted by key in C-locale order, atomically.

Segment rules, the same for data preparation (stage 1, :func:`validate_datadir` and :mod:`salign.data.mustc`) and
feature extraction (stage 3, :func:`read_data_dir`): ``utt rec start end`` with ``0 <= start < end``, or
``end = -1`` for "to the end of the recording" (Kaldi's convention). A segment may end at most
:data:`SEGMENT_TOLERANCE` (0.05 s) after its recording: stage 1 rejects a larger overrun, so stage 3 never meets
one and clips the tolerated overrun to the end of the file. Both check with :func:`check_segment_end` (the one
rule and message: the segment, its file and line, the fix). A speed-perturbed copy is an utterance whose
``utt2speed`` factor is not 1 (:func:`is_perturbed`), never recognised by its id.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from salign.data.kaldi import iter_table, read_table, write_table
from salign.utils.io import InputError, PathLike, atomic_dir

__all__ = ["per_utt_files", "spk2utt_from_utt2spk", "format_time", "subset_datadir",
           "speed_perturb_datadir", "validate_datadir", "SEGMENT_TOLERANCE", "Segment", "parse_segment",
           "read_speeds", "read_data_dir", "is_perturbed", "check_segment_end"]

#: Seconds a segment may end past the end of its recording (rounding in corpus offsets). Data preparation (stage 1)
#: rejects a larger overrun; feature extraction clips a smaller one to the end of the file, so it never fails late.
SEGMENT_TOLERANCE = 0.05
#: files keyed by utterance id (besides ``text*``)
PER_UTT = ("segments", "utt2spk", "utt2dur", "utt2speed", "utt2num_frames", "feats.scp")


def format_time(seconds: float) -> str:
    """Seconds with at least 3 and at most 6 decimals: ``1.5 -> '1.500'``, ``0.48475 -> '0.48475'``."""
    text = f"{seconds:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(3, '0')}"


def spk2utt_from_utt2spk(utt2spk: Mapping[str, str]) -> Dict[str, str]:
    """Invert ``utt2spk``; utterances of a speaker are listed in sorted order."""
    groups: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk):
        groups.setdefault(utt2spk[utt], []).append(utt)
    return {spk: " ".join(utts) for spk, utts in groups.items()}


def per_utt_files(data: PathLike) -> List[str]:
    """Names of the files in ``data`` keyed by utterance id (``text*`` and the usual ``utt2*``/``segments``)."""
    data = Path(data)
    names = [n for n in PER_UTT if (data / n).is_file()]
    names += sorted(p.name for p in data.glob("text*") if p.is_file() and not p.name.startswith("."))
    if not (data / "segments").is_file() and (data / "wav.scp").is_file():
        names.append("wav.scp")  # no segments: one recording per utterance
    return names


def _require_dir(data: Path) -> None:
    if not data.is_dir():
        raise InputError("data dir not found", data, fix="pass the data dir written by prep_mustc")
    for name in ("wav.scp", "utt2spk"):
        if not (data / name).is_file():
            raise InputError(f"missing {name}", data, fix="re-run data preparation (salign.bin.prep_mustc)")


def subset_datadir(data: PathLike, out: PathLike, first: Optional[int] = None,
                   utt_list: Optional[Iterable[str]] = None) -> int:
    """Copy the first ``first`` utterances (sorted order) or those in ``utt_list`` into ``out``; return the count.

    Every per-utterance file is filtered, ``spk2utt`` is rebuilt and ``wav.scp`` keeps only used recordings.
    """
    data, out = Path(data), Path(out)
    _require_dir(data)
    utt2spk = read_table(data / "utt2spk")
    if (first is None) == (utt_list is None):
        raise InputError("give exactly one of --first and --utt_list", fix="e.g. --first 100")
    if first is not None:
        if first <= 0:
            raise InputError(f"--first must be positive, got {first}", fix="e.g. --first 100")
        keep = set(sorted(utt2spk)[:first])
    else:
        keep = set(utt_list or [])
        unknown = sorted(keep - set(utt2spk))
        if unknown:
            raise InputError(f"{len(unknown)} utterance ids not in {data / 'utt2spk'}, e.g. '{unknown[0]}'",
                             fix="list ids from utt2spk")
    if not keep:
        raise InputError("the subset is empty", fix="give at least one utterance")
    with atomic_dir(out) as tmp:
        for name in per_utt_files(data):
            table = read_table(data / name)
            write_table(tmp / name, {k: v for k, v in table.items() if k in keep})
        sub = {u: s for u, s in utt2spk.items() if u in keep}
        write_table(tmp / "spk2utt", spk2utt_from_utt2spk(sub))
        if (data / "segments").is_file():
            used = {v.split()[0] for k, v in read_table(data / "segments").items() if k in keep}
            write_table(tmp / "wav.scp", {k: v for k, v in read_table(data / "wav.scp").items() if k in used})
    return len(keep)


def _factor_tag(factor: float) -> str:
    return f"{factor:g}"


def speed_perturb_datadir(data: PathLike, out: PathLike, factors: Sequence[float]) -> int:
    """Write a Kaldi-style speed-perturbed copy; return the number of utterances written.

    For factor ``f`` != 1 utterance and speaker ids get the prefix ``sp<f>-``; segments keep the same recordings and
    times, ``utt2dur`` is divided by ``f`` and ``utt2speed`` records the factor (the feature extractor applies it).
    """
    data, out = Path(data), Path(out)
    _require_dir(data)
    if not factors or any(f <= 0 for f in factors) or len(set(factors)) != len(factors):
        raise InputError(f"bad --factors {list(factors)}", fix="distinct positive numbers, e.g. 0.9,1.0,1.1")
    if not (data / "segments").is_file():
        raise InputError("missing segments", data, fix="speed perturbation needs a segmented data dir")
    tables = {name: read_table(data / name) for name in per_utt_files(data)}
    utt2spk = tables["utt2spk"]
    old_speed = read_speeds(data)
    result: Dict[str, Dict[str, str]] = {name: {} for name in tables}
    result["utt2speed"] = {}
    for f in factors:
        prefix = "" if f == 1.0 else f"sp{_factor_tag(f)}-"
        for name, table in tables.items():
            if name in ("utt2speed", "utt2num_frames", "feats.scp"):
                continue  # features must be re-extracted for perturbed copies
            for utt, value in table.items():
                if name == "utt2spk":
                    value = prefix + value
                elif name == "utt2dur":
                    value = format_time(float(value) / f)
                result[name][prefix + utt] = value
        for utt in utt2spk:
            result["utt2speed"][prefix + utt] = f"{old_speed.get(utt, 1.0) * f:g}"
    result.pop("utt2num_frames", None)
    result.pop("feats.scp", None)
    with atomic_dir(out) as tmp:
        for name, table in result.items():
            write_table(tmp / name, table)
        write_table(tmp / "spk2utt", spk2utt_from_utt2spk(result["utt2spk"]))
        shutil.copyfile(data / "wav.scp", tmp / "wav.scp")
    return len(result["utt2spk"])


@dataclass(frozen=True)
class Segment:
    """One utterance: ``start``/``end`` in seconds of the original recording (``end=None``: to the end of file)."""

    utt: str
    rec: str
    start: float = 0.0
    end: Optional[float] = None
    speed: float = 1.0
    line: int = field(default=0, compare=False)  # its line in ``segments`` (0: no segments file)


def check_segment_end(utt: str, start: float, end: float, audio: PathLike, audio_seconds: float, path: PathLike,
                      line: Optional[int], fix: str = "") -> None:
    """The one rule for a segment past the end of its recording: ``end`` may exceed ``audio_seconds`` by at most
    :data:`SEGMENT_TOLERANCE`; beyond that an :class:`InputError` naming the segment, ``path:line`` (the yaml or
    ``segments`` line it comes from) and the fix (the largest end time that passes)."""
    if end <= audio_seconds + SEGMENT_TOLERANCE:
        return
    latest = audio_seconds + SEGMENT_TOLERANCE
    raise InputError(f"segment '{utt}' ends at {end:.3f} s, after the end of {audio} ({audio_seconds:.3f} s) by "
                     f"{end - audio_seconds:.3f} s, more than the {SEGMENT_TOLERANCE} s tolerated", path, line,
                     fix or f"make it end by {latest:.3f} s, drop it, or restore the full recording")


def parse_segment(utt: str, value: str, path: PathLike, lineno: int) -> Tuple[str, float, Optional[float]]:
    """``rec start end`` of a ``segments`` line -> ``(rec, start, end)``; Kaldi's ``end = -1`` (to the end of the
    recording) gives ``end=None``. Needs exactly three fields, numbers, ``0 <= start < end``."""
    fields = value.split()
    if len(fields) != 3:
        raise InputError(f"expected 'utt rec start end', got '{utt} {value}'", path, lineno, "fix the segments file")
    try:
        start, end = float(fields[1]), float(fields[2])
    except ValueError:
        raise InputError(f"utterance '{utt}': times must be numbers, got '{value}'", path, lineno,
                         "fix the segments file") from None
    if end == -1 and start >= 0:
        return fields[0], start, None
    if not 0 <= start < end:
        what = "negative start" if start < 0 else "empty segment"
        raise InputError(f"utterance '{utt}': {what} (start={start} end={end})", path, lineno,
                         "need 0 <= start < end (or end = -1: to the end of the recording)")
    return fields[0], start, end


def read_speeds(data: PathLike) -> Dict[str, float]:
    """``utt2speed`` of a data dir (utt -> positive speed factor); ``{}`` when the dir has none."""
    path = Path(data) / "utt2speed"
    speeds: Dict[str, float] = {}
    if not path.is_file():
        return speeds
    for lineno, utt, value in iter_table(path):
        try:
            speeds[utt] = float(value)
        except ValueError:
            speeds[utt] = -1.0
        if not speeds[utt] > 0:
            raise InputError(f"utterance '{utt}': bad speed factor '{value}'", path, lineno,
                             fix="write a positive number such as 0.9")
    return speeds


def is_perturbed(speeds: Mapping[str, float], utt: str) -> bool:
    """True for a speed-perturbed copy: ``utt2speed`` (:func:`read_speeds`) gives it a factor other than 1."""
    return speeds.get(utt, 1.0) != 1.0


def read_data_dir(data: PathLike) -> Tuple[List[Segment], Dict[str, str]]:
    """The utterances of a data dir as :class:`Segment` sorted by id, and recording id -> audio path.

    Without ``segments`` every recording of ``wav.scp`` is one utterance. Segment rules: :func:`parse_segment`;
    a segment ending at most :data:`SEGMENT_TOLERANCE` past its recording is clipped when the audio is read.
    """
    data = Path(data)
    fix = "run data preparation first"
    wav_scp = read_table(data / "wav.scp", fix=fix)
    speeds = read_speeds(data)
    segs: List[Segment] = []
    if (data / "segments").is_file():
        for lineno, utt, value in iter_table(data / "segments", fix=fix):
            rec, start, end = parse_segment(utt, value, data / "segments", lineno)
            if rec not in wav_scp:
                raise InputError(f"utterance '{utt}' refers to recording '{rec}' absent from wav.scp",
                                 data / "segments", lineno, fix="re-run data preparation")
            segs.append(Segment(utt, rec, start, end, speeds.get(utt, 1.0), lineno))
    else:
        segs = [Segment(rec, rec, 0.0, None, speeds.get(rec, 1.0)) for rec in wav_scp]
    if not segs:
        raise InputError("no utterances", data, fix="check wav.scp/segments are not empty")
    segs.sort(key=lambda s: s.utt)
    return segs, wav_scp


def _check_sorted(path: Path) -> Dict[str, str]:
    table: Dict[str, str] = {}
    prev = None
    for lineno, key, value in iter_table(path):
        if prev is not None and key < prev:
            raise InputError(f"not sorted: '{key}' after '{prev}'", path, lineno,
                             "sort by key in C locale (LC_ALL=C sort)")
        table[key] = value
        prev = key
    return table


def _number(value: str, path: Path, key: str) -> float:
    try:
        out = float(value)
    except ValueError:
        out = -1.0
    if out <= 0:
        raise InputError(f"'{key}' has '{value}', expected a positive number", path, fix="rebuild the file")
    return out


def _wav_duration(path: str) -> Optional[float]:
    if not os.path.isfile(path):
        return None
    import soundfile

    try:
        info = soundfile.info(path)
    except Exception:  # noqa: BLE001 - any decoder failure is reported as unreadable
        return -1.0
    return info.frames / info.samplerate


def validate_datadir(data: PathLike, check_audio: bool = True) -> int:
    """Check a data dir for consistency; return the number of utterances or raise :class:`InputError`.

    Checks: required files, every file sorted with unique keys, the same utterance set in every per-utterance file,
    utterance ids prefixed by their speaker id, ``spk2utt`` matching ``utt2spk``, segments referencing known
    recordings with ``0 <= start < end`` within the wav (when ``check_audio``), and ``utt2dur`` matching segments.
    """
    data = Path(data)
    _require_dir(data)
    tables = {name: _check_sorted(data / name) for name in per_utt_files(data)}
    wav_scp = _check_sorted(data / "wav.scp")
    utt2spk = tables["utt2spk"]
    utts = set(utt2spk)
    if not utts:
        raise InputError("no utterances", data / "utt2spk", fix="re-run data preparation")
    for name, table in tables.items():
        if set(table) != utts:
            extra = sorted(set(table) - utts)
            miss = sorted(utts - set(table))
            what = f"has '{extra[0]}' not in utt2spk" if extra else f"lacks '{miss[0]}' from utt2spk"
            raise InputError(f"utterance set differs from utt2spk: {what}", data / name,
                             fix="filter every per-utterance file to the same ids (data_utils subset)")
    for lineno, (utt, spk) in enumerate(utt2spk.items(), 1):
        if not spk or not utt.startswith(spk):
            raise InputError(f"utterance id '{utt}' does not start with its speaker id '{spk}'",
                             data / "utt2spk", lineno, "prefix utterance ids with the speaker id")
    spk2utt_path = data / "spk2utt"
    if not spk2utt_path.is_file():
        raise InputError("missing spk2utt", data, fix="rebuild it from utt2spk")
    spk2utt = _check_sorted(spk2utt_path)
    if spk2utt != spk2utt_from_utt2spk(utt2spk):
        raise InputError("spk2utt does not match utt2spk", spk2utt_path, fix="rebuild spk2utt from utt2spk")
    segments = tables.get("segments")
    if segments is None:
        return len(utts)
    speed = read_speeds(data)
    durs = {u: _number(v, data / "utt2dur", u) for u, v in tables.get("utt2dur", {}).items()}
    rec_dur: Dict[str, Optional[float]] = {}
    for lineno, utt, value in iter_table(data / "segments"):
        rec, start, end = parse_segment(utt, value, data / "segments", lineno)
        if rec not in wav_scp:
            raise InputError(f"recording '{rec}' not in wav.scp", data / "segments", lineno,
                             "add it to wav.scp or drop the segment")
        if check_audio and (end is not None or utt in durs):
            if rec not in rec_dur:
                rec_dur[rec] = _wav_duration(wav_scp[rec])
            total = rec_dur[rec]
            if total is not None and total < 0:
                raise InputError(f"unreadable wav {wav_scp[rec]}", data / "wav.scp", fix="re-create the audio")
            if total is not None and end is not None:
                check_segment_end(utt, start, end, wav_scp[rec], total, data / "segments", lineno)
            if end is None:
                end = total
        if utt in durs and end is not None:
            want = (end - start) / speed.get(utt, 1.0)
            if abs(durs[utt] - want) > 0.01:
                raise InputError(f"utt2dur says {durs[utt]:.3f} but segments/utt2speed give {want:.3f}",
                                 data / "utt2dur", list(durs).index(utt) + 1, "rebuild utt2dur")
    return len(utts)
