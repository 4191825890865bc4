"""Stage 4 and 10 helpers: length filtering into training-ready dump dirs, and ESPnet shape/stat files.

    # stage 4: join features and texts of one split, dropping bad utterances (train/dev) or keeping all (test)
    python -m salign.bin.prepare_dump filter --data data/train --feats dump/fbank/train --out dump/filtered/train \
        --src_lang en --tgt_lang es [--min_frames 10 --max_frames 3000 --max_src_tokens 200 --max_tgt_tokens 200]
        [--keep_all]
    # the same on raw audio (--feats_type raw: make_raw's wav.scp), lengths in samples at 16 kHz
    python -m salign.bin.prepare_dump filter --data data/train --feats dump/raw/train --out dump/filtered/train \
        --src_lang en --tgt_lang es [--min_samples 1600 --max_samples 480000 ...]
    # stage 10 (instead of ESPnet's slow collect-stats pass): shape files and global CMVN stats
    python -m salign.bin.prepare_dump stats --dump dump/filtered/train --out exp/stats/train \
        --src_lang en --tgt_lang es --bpemodel tgt.model --src_bpemodel src.model [--cmvn dump/fbank/train/cmvn.npz]

    # stage 4: parallel text for MT pre-training (training transcripts + optional extra text-only data)
    python -m salign.bin.prepare_dump mt_text --out dump/filtered/mt_train --dump dump/filtered/train \
        [--src_file extra.en --tgt_file extra.es] --src_lang en --tgt_lang es

``filter`` writes ``feats.scp``, ``utt2num_frames``, ``feats_shape`` (``frames,dims``), ``text.<src>``,
``text.<tgt>`` and a ``filter.log`` counting what was dropped and why; on a raw dump (``make_raw``: ``wav.scp`` and
``utt2num_samples``) it writes ``wav.scp`` and ``utt2num_samples`` instead of the first three, filtering by
``--min_samples``/``--max_samples``. ``stats`` writes ``speech_shape`` (``frames,dims`` for fbank; samples for raw
audio, ESPnet's raw shape format ``utt 123456``), ``text_shape``, ``src_text_shape`` (token counts, ESPnet's format)
and, with ``--cmvn``, ``feats_stats.npz`` (ESPnet's GlobalMVN format; raw audio has none).
"""
from __future__ import annotations

import argparse
import shutil
from collections import Counter
from pathlib import Path
from typing import Dict, Optional, Sequence

from salign.data.datadir import read_kv
from salign.feats.fbank import FBANK_DIM
from salign.utils.io import InputError, atomic_dir, atomic_write, run_cli


def _tokenizer(model: Optional[str]):
    if model is None:
        return lambda s: s.split()
    import sentencepiece as spm

    if not Path(model).is_file():
        raise InputError("SentencePiece model not found", model, fix="run stage 5 (token lists) first")
    sp = spm.SentencePieceProcessor(model_file=str(model))
    return lambda s: sp.encode(s)


def _feat_dim(feats: Path) -> int:
    """The feature width of an fbank dump (its ``feats_shape``: ``utt frames,dims``)."""
    shape = feats / "feats_shape"
    if shape.is_file():
        with shape.open(encoding="utf-8") as f:
            first = f.readline().split()
        if len(first) == 2 and "," in first[1]:
            return int(first[1].rsplit(",", 1)[1])
    return FBANK_DIM


def filter_split(data: Path, feats: Path, out: Path, src: str, tgt: str, min_frames: int, max_frames: int,
                 max_src_tokens: int, max_tgt_tokens: int, keep_all: bool, subset: int = 0,
                 min_samples: int = 1600, max_samples: int = 480000) -> Counter:
    """Join features and texts; drop missing/empty/too short/too long utterances unless ``keep_all``.

    ``feats`` is an fbank dump (``feats.scp``, ``utt2num_frames``: lengths checked against ``min_frames``..
    ``max_frames``) or a raw-audio dump (``wav.scp``, ``utt2num_samples``: ``min_samples``..``max_samples``).
    ``subset > 0`` keeps that many of the passing utterances, evenly spaced, never speed-perturbed copies (a
    training subset to decode: is the model learning?).
    """
    if not (feats / ".done").is_file():
        raise InputError("features are incomplete (no .done marker)", feats, fix="run stage 3 (features) first")
    raw = (feats / "utt2num_samples").is_file() and not (feats / "utt2num_frames").is_file()
    scp_name, len_name, unit = ("wav.scp", "utt2num_samples", "samples") if raw else \
        ("feats.scp", "utt2num_frames", "frames")
    lo, hi = (min_samples, max_samples) if raw else (min_frames, max_frames)
    scp = read_kv(feats / scp_name)
    frames = {k: int(v) for k, v in read_kv(feats / len_name).items()}
    src_text = read_kv(data / f"text.{src}")
    tgt_text = read_kv(data / f"text.{tgt}")
    why: Counter = Counter()
    keep = []
    for utt in sorted(scp):
        if utt not in src_text or utt not in tgt_text:
            why["no text"] += 1
            continue
        if not keep_all:
            n, s, t = frames[utt], src_text[utt].split(), tgt_text[utt].split()
            reason = (f"too few {unit}" if n < lo else f"too many {unit}" if n > hi
                      else "empty transcript" if not s else "empty translation" if not t
                      else "transcript too long" if len(s) > max_src_tokens
                      else "translation too long" if len(t) > max_tgt_tokens else None)
            if reason:
                why[reason] += 1
                continue
        keep.append(utt)
    if subset > 0:
        orig = [u for u in keep if not (u.startswith("sp") and "-" in u and u.split("-", 1)[0][2:3].isdigit())]
        step = max(1, len(orig) // subset)
        keep = orig[::step][:subset]
    if not keep:
        raise InputError(f"no utterance left after filtering ({dict(why)})", data,
                         fix=f"check the data dir and the --min_{unit}/--max_{unit} limits")
    why["kept"] = len(keep)
    with atomic_dir(out) as tmp:
        files = {scp_name: scp, len_name: {k: str(frames[k]) for k in keep}}
        if not raw:
            dim = _feat_dim(feats)
            files["feats_shape"] = {k: f"{frames[k]},{dim}" for k in keep}
        files.update({f"text.{src}": src_text, f"text.{tgt}": tgt_text})
        for name, table in files.items():
            with open(tmp / name, "w", encoding="utf-8") as f:
                f.writelines(f"{k} {table[k]}\n" for k in keep)
        with open(tmp / "filter.log", "w", encoding="utf-8") as f:
            f.writelines(f"{k}: {v}\n" for k, v in sorted(why.items()))
    return why


def write_stats(dump: Path, out: Path, src: str, tgt: str, bpemodel: Optional[str], src_bpemodel: Optional[str],
                cmvn: Optional[Path]) -> None:
    """ESPnet shape files (speech: fbank ``frames,dims`` or raw samples; texts: token counts) and feats_stats.npz
    for one dump dir."""
    enc_tgt, enc_src = _tokenizer(bpemodel), _tokenizer(src_bpemodel or bpemodel)
    with atomic_dir(out) as tmp:
        if (dump / "feats_shape").is_file():
            shutil.copyfile(dump / "feats_shape", tmp / "speech_shape")
        elif (dump / "utt2num_samples").is_file():  # ESPnet's raw shape files are the sample counts
            shutil.copyfile(dump / "utt2num_samples", tmp / "speech_shape")
        for name, lang, enc in (("text_shape", tgt, enc_tgt), ("src_text_shape", src, enc_src)):
            table = read_kv(dump / f"text.{lang}")
            with open(tmp / name, "w", encoding="utf-8") as f:
                f.writelines(f"{k} {max(1, len(enc(v)))}\n" for k, v in table.items())
        if cmvn is not None:
            if not cmvn.is_file():
                raise InputError("CMVN statistics not found", cmvn, fix="run stage 3 (fbank) first")
            shutil.copyfile(cmvn, tmp / "feats_stats.npz")


def mt_text(out: Path, src: str, tgt: str, dumps: Sequence[Path], src_files: Sequence[Path],
            tgt_files: Sequence[Path]) -> int:
    """Parallel text for MT pre-training: the transcripts/translations of ``dumps`` (speed-perturbed copies skipped)
    plus plain-text parallel files (one sentence per line; the source is normalised like MuST-C transcripts)."""
    from salign.text.normalize import normalize_source, normalize_target

    rows: Dict[str, tuple] = {}
    for d in dumps:
        s_tab, t_tab = read_kv(d / f"text.{src}"), read_kv(d / f"text.{tgt}")
        for k, v in s_tab.items():
            if not (k.startswith("sp") and "-" in k and k.split("-", 1)[0][2:3].isdigit()):
                rows[k] = (v, t_tab[k])
    for i, (sf, tf) in enumerate(zip(src_files, tgt_files)):
        s_lines = Path(sf).read_text(encoding="utf-8").splitlines()
        t_lines = Path(tf).read_text(encoding="utf-8").splitlines()
        if len(s_lines) != len(t_lines):
            raise InputError(f"{len(s_lines)} lines but {tf} has {len(t_lines)}", sf,
                             fix="the two sides of a parallel text must have the same number of lines")
        for n, (a, b) in enumerate(zip(s_lines, t_lines), 1):
            a, b = normalize_source(a), normalize_target(b)
            if a and b:
                rows[f"mtx{i}_{n:08d}"] = (a, b)
    with atomic_dir(out) as tmp:
        for name, idx in ((f"text.{src}", 0), (f"text.{tgt}", 1)):
            with open(tmp / name, "w", encoding="utf-8") as f:
                f.writelines(f"{k} {rows[k][idx]}\n" for k in sorted(rows))
    return len(rows)


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("filter", help="join features and texts, drop bad utterances")
    f.add_argument("--data", required=True, type=Path)
    f.add_argument("--feats", required=True, type=Path)
    f.add_argument("--out", required=True, type=Path)
    f.add_argument("--min_frames", type=int, default=10, help="fbank dumps: fewest 10 ms frames")
    f.add_argument("--max_frames", type=int, default=3000, help="fbank dumps: most 10 ms frames")
    f.add_argument("--min_samples", type=int, default=1600, help="raw dumps: fewest 16 kHz samples (0.1 s)")
    f.add_argument("--max_samples", type=int, default=480000, help="raw dumps: most 16 kHz samples (30 s)")
    f.add_argument("--max_src_tokens", type=int, default=200, help="words")
    f.add_argument("--max_tgt_tokens", type=int, default=200, help="words")
    f.add_argument("--keep_all", action="store_true", help="test sets: keep every utterance with features")
    f.add_argument("--subset", type=int, default=0, help="keep this many (evenly spaced, no speed-perturbed copies)")
    s = sub.add_parser("stats", help="shape files and CMVN stats for ESPnet")
    s.add_argument("--dump", required=True, type=Path)
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--bpemodel", default=None)
    s.add_argument("--src_bpemodel", default=None)
    s.add_argument("--cmvn", type=Path, default=None)
    m = sub.add_parser("mt_text", help="parallel text for MT pre-training (dump dirs + plain-text files)")
    m.add_argument("--out", required=True, type=Path)
    m.add_argument("--dump", type=Path, nargs="*", default=[], help="dump dirs whose texts to include")
    m.add_argument("--src_file", type=Path, nargs="*", default=[], help="plain-text source files")
    m.add_argument("--tgt_file", type=Path, nargs="*", default=[], help="plain-text target files (same order)")
    for q in (f, s, m):
        q.add_argument("--src_lang", default="en")
        q.add_argument("--tgt_lang", required=True)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point."""
    a = get_parser().parse_args(argv)
    if a.cmd == "filter":
        why = filter_split(a.data, a.feats, a.out, a.src_lang, a.tgt_lang, a.min_frames, a.max_frames,
                           a.max_src_tokens, a.max_tgt_tokens, a.keep_all, a.subset, a.min_samples, a.max_samples)
        print(f"[prepare_dump] {a.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(why.items())))
    elif a.cmd == "mt_text":
        if len(a.src_file) != len(a.tgt_file):
            raise InputError("--src_file and --tgt_file must come in pairs", fix="give one --tgt_file per --src_file")
        n = mt_text(a.out, a.src_lang, a.tgt_lang, a.dump, a.src_file, a.tgt_file)
        print(f"[prepare_dump] {a.out}: {n} sentence pairs for MT pre-training")
    else:
        write_stats(a.dump, a.out, a.src_lang, a.tgt_lang, a.bpemodel, a.src_bpemodel, a.cmvn)
        print(f"[prepare_dump] {a.out}: speech_shape, text_shape, src_text_shape"
              + (", feats_stats.npz" if a.cmvn else ""))
    return 0


if __name__ == "__main__":
    run_cli(main)
