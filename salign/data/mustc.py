"""Read and validate a MuST-C corpus (v1 or v2 layout) and write Kaldi data dirs.

Layout (both versions): ``<root>/<src>-<tgt>/data/<split>/wav/<talk>.wav`` plus ``txt/<split>.yaml``,
``txt/<split>.<src>`` and ``txt/<split>.<tgt>`` with one line per segment in the same order. ``root`` may also be
the ``<src>-<tgt>`` directory itself. Every split is validated before anything is written; each data dir is
written as a whole (atomic) with a stamp (:mod:`salign.utils.stamp`) so that an identical re-run is skipped.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import yaml

from salign.data.datadir import SEGMENT_TOLERANCE, check_segment_end, format_time, spk2utt_from_utt2spk
from salign.data.kaldi import cr_fix, line_end, write_table
from salign.text.normalize import normalize_source, normalize_target
from salign.utils.io import InputError, PathLike, atomic_dir
from salign.utils.stamp import Stamp

__all__ = ["V1_TARGETS", "Segment", "find_pair_dir", "detect_version", "parse_yaml", "read_split",
           "speaker_id", "write_datadir", "prepare", "STAMP"]

V1_TARGETS = ("de", "es", "fr", "it", "nl", "pt", "ro", "ru")
REQUIRED_KEYS = ("duration", "offset", "speaker_id", "wav")
STAMP = ".prep_mustc.json"
SAMPLE_RATE = 16000
_NUM = r"([0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)"
_MUSTC_LINE = re.compile(rf"^- \{{duration: {_NUM}, offset: {_NUM}, rw: ([0-9]+), "
                         r"speaker_id: ([A-Za-z0-9._-]+), wav: ([A-Za-z0-9._-]+)\}\s*$")
_FLOW_LINE = re.compile(r"^-\s*\{(.*)\}\s*$")
_FLOW_ITEM = re.compile(r"^\s*([A-Za-z_]+)\s*:\s*(.*?)\s*$")
_NUMERIC_SPK = re.compile(r"^([A-Za-z]*)[._-]?(\d+)$")


@dataclass
class Segment:
    """One MuST-C segment with its Kaldi ids."""

    utt: str
    spk: str
    rec: str
    start: float
    end: float
    src: str
    tgt: str


def find_pair_dir(root: PathLike, src: str, tgt: str) -> Path:
    """Return the ``<src>-<tgt>`` dir holding ``data/``: ``root/<pair>``, ``root/*_<pair>`` or ``root`` itself."""
    root = Path(root)
    pair = f"{src}-{tgt}"
    fix = f"point --mustc_root (or MUSTC_ROOT) at the dir containing {pair}/data/<split>/"
    if not root.is_dir():
        raise InputError("MuST-C root dir not found", root, fix=fix)
    if (root / pair / "data").is_dir():
        return root / pair
    for cand in sorted(root.glob(f"*{pair}")):  # e.g. MUSTC_v1.0_en-de
        if (cand / "data").is_dir():
            return cand
    if (root / "data").is_dir():  # root is the pair dir itself
        other = re.search(r"([a-z]{2,3})-([a-z]{2,3})$", root.name)
        if other and other.group(0) != pair:
            raise InputError(f"this is the {other.group(0)} dir, not {pair}", root, fix=fix)
        return root
    raise InputError(f"no {pair}/data dir under the MuST-C root", root, fix=fix)


def detect_version(pair_dir: Path, requested: str, tgt: str) -> str:
    """Resolve ``auto``/``v1``/``v2``: v1 has only the 8 en-X pairs; a path naming v2 means v2."""
    if requested not in ("auto", "v1", "v2"):
        raise InputError(f"unknown --version '{requested}'", fix="use auto, v1 or v2")
    version = requested
    if requested == "auto":
        names = " ".join(pair_dir.resolve().parts[-2:])
        version = "v2" if re.search(r"v2(\.\d)?(\b|_)", names) or tgt not in V1_TARGETS else "v1"
    if version == "v1" and tgt not in V1_TARGETS:
        raise InputError(f"MuST-C v1 has no en-{tgt} pair (v1 targets: {', '.join(V1_TARGETS)})", pair_dir,
                         fix="use --version v2 or auto")
    return version


def _scalar(text: str):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return float(text) if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text) else text
    except ValueError:  # pragma: no cover - regex guarantees a float
        return text


def _parse_flow(line: str) -> Optional[dict]:
    """Fast path for ``- {key: value, ...}`` lines without nested quotes/commas; ``None`` if not that simple."""
    m = _MUSTC_LINE.match(line)
    if m:  # the exact MuST-C form: one regex, no per-item work
        return {"duration": float(m.group(1)), "offset": float(m.group(2)), "rw": int(m.group(3)),
                "speaker_id": m.group(4), "wav": m.group(5)}
    m = _FLOW_LINE.match(line)
    if not m or any(c in m.group(1) for c in "{}[]\"'#"):
        return None
    entry = {}
    for item in m.group(1).split(","):
        km = _FLOW_ITEM.match(item)
        if not km:
            return None
        entry[km.group(1)] = _scalar(km.group(2))
    return entry


def parse_yaml(path: Path) -> List[Tuple[int, dict]]:
    """Parse a MuST-C segment yaml into ``(line number, entry)`` pairs; fast path for one flow mapping a line."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first entry
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read yaml ({exc})", path, fix="restore the file from the MuST-C archive") from None
    lines = text.splitlines()
    if all(ln.lstrip().startswith("- ") or not ln.strip() or ln.lstrip().startswith("#") for ln in lines):
        out = []
        for lineno, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            entry = _parse_flow(line)
            if entry is None:
                try:
                    parsed = yaml.load(line, Loader=loader)
                except yaml.YAMLError as exc:
                    raise InputError(f"unparsable yaml entry ({str(exc).splitlines()[0]})", path, lineno,
                                     "write '- {duration: D, offset: O, speaker_id: S, wav: W}'") from None
                entry = parsed[0] if isinstance(parsed, list) and len(parsed) == 1 else None
            if not isinstance(entry, dict):
                raise InputError("yaml entry is not a mapping", path, lineno,
                                 "write '- {duration: D, offset: O, speaker_id: S, wav: W}'")
            out.append((lineno, entry))
        return out
    try:  # block-style yaml: slow path, line numbers from the composed nodes
        node = yaml.compose(text, Loader=loader)
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"unparsable yaml ({getattr(exc, 'problem', exc)})", path,
                         mark.line + 1 if mark else None, "fix the yaml syntax") from None
    if not isinstance(data, list) or node is None:
        raise InputError("yaml is not a list of segments", path, fix="restore the file from the MuST-C archive")
    return [(n.start_mark.line + 1, e) for n, e in zip(node.value, data)]


def speaker_id(raw: str) -> str:
    """Map a MuST-C speaker id to a Kaldi-safe one: ``spk.12 -> spk000012`` (fixed width keeps sort orders
    consistent); other ids keep only ``[A-Za-z0-9]``."""
    m = _NUMERIC_SPK.match(raw)
    if m:
        return f"{m.group(1) or 'spk'}{int(m.group(2)):06d}"
    return re.sub(r"[^A-Za-z0-9]", "", raw)


def _read_lines(path: Path) -> List[str]:
    """The lines of a MuST-C text file: split on LF (one CR before it dropped: CRLF files), or on CR in a file whose
    first line ends in a CR alone (old Mac line ends); a UTF-8 byte-order mark at the start dropped (it would reach
    the BLEU reference); a CR inside a line of an LF file is an error naming the line (a universal-newline reader
    would split the sentence and shift every later line) with a fix that keeps every line."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError("file not found", path, fix="restore the file from the MuST-C archive") from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path,
                         fix="restore the file from the MuST-C archive") from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not UTF-8 ({exc.reason})", path, line, fix="convert the file to UTF-8") from None
    text = text.removeprefix("\ufeff")
    end = line_end(text[: 1 << 16])
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split(end)]
    if lines and lines[-1] == "":
        lines.pop()
    for i, ln in enumerate(lines, 1):
        if "\r" in ln or "\n" in ln:
            raise InputError("carriage return (CR) inside the line" if end == "\n" else
                             "line feed (LF) inside the line of a file whose lines end in CR", path, i,
                             fix=cr_fix(path) if end == "\n" else
                             f"give the file one kind of line end, e.g. tr '\\r' '\\n' < {path} > {path}.lf")
    return lines


def _wav_info(path: Path) -> float:
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception as exc:  # noqa: BLE001 - decoder errors vary by format
        raise InputError(f"unreadable wav ({str(exc).splitlines()[0][:120]})", path,
                         fix="re-extract the talk wav from the MuST-C archive") from None
    if info.samplerate != SAMPLE_RATE:
        raise InputError(f"sample rate {info.samplerate} Hz, expected {SAMPLE_RATE}", path,
                         fix=f"resample: sox in.wav -r {SAMPLE_RATE} out.wav")
    if info.channels != 1:
        raise InputError(f"{info.channels} channels, expected mono", path, fix="downmix: sox in.wav -c 1 out.wav")
    return info.frames / info.samplerate


def read_split(pair_dir: Path, split: str, src: str, tgt: str) -> Tuple[List[Segment], Dict[str, Path]]:
    """Read and fully validate one split; return its segments (sorted by utt id) and recording -> wav path."""
    split_dir = pair_dir / "data" / split
    if not split_dir.is_dir():
        raise InputError(f"split '{split}' not found", split_dir, fix="check --splits against the corpus")
    txt = split_dir / "txt"
    yaml_path, src_path, tgt_path = txt / f"{split}.yaml", txt / f"{split}.{src}", txt / f"{split}.{tgt}"
    entries = parse_yaml(yaml_path)
    src_lines, tgt_lines = _read_lines(src_path), _read_lines(tgt_path)
    if not len(entries) == len(src_lines) == len(tgt_lines):
        raise InputError(f"line counts differ: {yaml_path.name} {len(entries)}, {src_path.name} {len(src_lines)}, "
                         f"{tgt_path.name} {len(tgt_lines)}", txt, fix="restore the files from the MuST-C archive")
    rec_dur: Dict[str, float] = {}
    wavs: Dict[str, Path] = {}
    seen: Dict[str, int] = {}
    segs: List[Segment] = []
    for i, (lineno, e) in enumerate(entries):
        missing = [k for k in REQUIRED_KEYS if k not in e]
        if missing:
            raise InputError(f"yaml entry lacks {', '.join(missing)}", yaml_path, lineno,
                             "each entry needs duration, offset, speaker_id and wav")
        try:
            offset, duration = float(e["offset"]), float(e["duration"])
        except (TypeError, ValueError):
            raise InputError(f"offset/duration not numbers: {e['offset']!r}, {e['duration']!r}", yaml_path,
                             lineno, "write seconds as numbers") from None
        if offset < 0 or duration <= 0:
            raise InputError(f"bad offset {offset} / duration {duration}", yaml_path, lineno,
                             "need offset >= 0 and duration > 0")
        wav_name = str(e["wav"])
        rec = re.sub(r"[^A-Za-z0-9_]", "_", Path(wav_name).stem)
        wav_path = split_dir / "wav" / wav_name
        if rec not in rec_dur:
            if not wav_path.is_file():
                raise InputError(f"wav '{wav_name}' not found (referenced at {yaml_path.name}:{lineno})",
                                 wav_path, fix="restore the talk wav from the MuST-C archive")
            rec_dur[rec] = _wav_info(wav_path)
            wavs[rec] = wav_path.resolve()
        end = offset + duration
        longest = rec_dur[rec] + SEGMENT_TOLERANCE - offset
        check_segment_end(f"{wav_name} offset {offset:g} duration {duration:g}", offset, end, wav_name, rec_dur[rec],
                          yaml_path, lineno, f"make its duration at most {longest:.3f}, drop the segment (its yaml "
                          "line and both text lines), or restore the full wav")
        src_text, tgt_text = src_lines[i].strip(), tgt_lines[i].strip()
        if not src_text:
            raise InputError("empty transcript", src_path, i + 1, "fill in or remove the segment in all 3 files")
        if not tgt_text:
            raise InputError("empty translation", tgt_path, i + 1, "fill in or remove the segment in all 3 files")
        spk = speaker_id(str(e["speaker_id"]))
        if not spk:
            raise InputError(f"speaker id {e['speaker_id']!r} has no usable characters", yaml_path, lineno,
                             "use ids like spk.1")
        utt = f"{spk}_{rec}_{round(offset * 1000):07d}_{round(end * 1000):07d}"
        if utt in seen:
            raise InputError(f"duplicate utterance id '{utt}' (same as line {seen[utt]})", yaml_path, lineno,
                             "remove the duplicated segment from the yaml and both text files")
        seen[utt] = lineno
        segs.append(Segment(utt, spk, rec, offset, end, src_text, tgt_text))
    if not segs:
        raise InputError("no segments", yaml_path, fix="restore the file from the MuST-C archive")
    segs.sort(key=lambda s: s.utt)
    spk_order = [s.spk for s in segs]
    if spk_order != sorted(spk_order):
        raise InputError("speaker ids do not sort consistently with utterance ids", yaml_path,
                         fix="use MuST-C style speaker ids (spk.N)")
    return segs, wavs


def write_datadir(out: Path, segs: Sequence[Segment], wavs: Dict[str, Path], src: str, tgt: str) -> None:
    """Write one Kaldi data dir atomically (all files sorted by key)."""
    with atomic_dir(out) as tmp:
        write_table(tmp / "wav.scp", {rec: str(path) for rec, path in wavs.items()})
        write_table(tmp / "segments", {s.utt: f"{s.rec} {format_time(s.start)} {format_time(s.end)}" for s in segs})
        utt2spk = {s.utt: s.spk for s in segs}
        write_table(tmp / "utt2spk", utt2spk)
        write_table(tmp / "spk2utt", spk2utt_from_utt2spk(utt2spk))
        write_table(tmp / f"text.{src}", {s.utt: normalize_source(s.src) for s in segs})
        write_table(tmp / f"text.{src}.tc", {s.utt: normalize_target(s.src) for s in segs})
        write_table(tmp / f"text.{tgt}", {s.utt: normalize_target(s.tgt) for s in segs})
        write_table(tmp / "utt2dur", {s.utt: format_time(s.end - s.start) for s in segs})


def split_stamp(pair_dir: Path, split: str, src: str, tgt: str, version: str, out: Path) -> Stamp:
    """The stamp of one split's data dir: the content of its ``txt/`` files, and the options and the names and sizes
    of its wav files (what the data dir depends on: a wav's duration follows from its size; its samples are the
    input of stage 3, whose own stamp covers them)."""
    split_dir = pair_dir / "data" / split
    wav_dir = split_dir / "wav"
    wavs = {}
    if wav_dir.is_dir():
        with os.scandir(wav_dir) as it:
            wavs = {ent.name: ent.stat().st_size for ent in it}
    txt = [split_dir / "txt"] if (split_dir / "txt").is_dir() else []
    return Stamp(out / STAMP, txt, {"tool": "salign.bin.prep_mustc", "pair_dir": str(pair_dir.resolve()),
                                    "split": split, "src": src, "tgt": tgt, "version": version, "wavs": wavs})


def prepare(root: PathLike, src: str, tgt: str, splits: Sequence[str], out: PathLike,
            version: str = "auto", log: Callable[[str], None] = print) -> Dict[str, int]:
    """Validate every requested split, then write ``out/<split>/``; return segments written per split.

    A split whose output exists with an identical stamp is skipped (count reported as 0 new).
    """
    pair_dir = find_pair_dir(root, src, tgt)
    version = detect_version(pair_dir, version, tgt)
    if not splits or len(set(splits)) != len(splits) or any(not s or "/" in s for s in splits):
        raise InputError(f"bad --splits {','.join(splits)}", fix="e.g. --splits train,dev,tst-COMMON")
    out = Path(out)
    todo = []
    for split in splits:
        stamp = split_stamp(pair_dir, split, src, tgt, version, out / split)
        if stamp.reason() is None:
            log(f"{out / split}: up to date (same inputs), skipped")
        else:
            todo.append((split, stamp))
    loaded = [(split, stamp, *read_split(pair_dir, split, src, tgt)) for split, stamp in todo]  # validate all first
    counts = {}
    for split, stamp, segs, wavs in loaded:
        write_datadir(out / split, segs, wavs, src, tgt)
        stamp.write()
        counts[split] = len(segs)
        hours = sum(s.end - s.start for s in segs) / 3600
        log(f"{out / split}: {len(segs)} segments, {len(wavs)} recordings, {hours:.2f} h (MuST-C {version})")
    return counts
