"""Stages 4 and 10 on dump dirs: length filtering, the training subset, MT pre-training text, shape files and CMVN.

:func:`filter_split` joins stage 3's features (fbank ``feats.scp`` + ``utt2num_frames``, or raw ``wav.scp`` +
``utt2num_samples``) with a data dir's texts into ``dump/fbank/filtered/<set>/``, dropping what is too short, too long
or empty (``filter.log`` says how many and why); a speed-perturbed set keeps its ``utt2speed`` there. Speed-perturbed
copies are recognised by ``utt2speed`` (:func:`salign.data.datadir.is_perturbed`), never by their ids.
:func:`mt_text` builds the MT pre-training text; :func:`write_stats` writes ESPnet's shape files (the only ones the
recipe writes: ``speech_shape`` as ``frames,width`` with the width read from the features, or raw sample counts;
``text_shape``/``src_text_shape`` in tokens) and, given one, the CMVN stats file.

No stale result (:mod:`salign.utils.stamp`): each writes a ``.stamp`` in its output dir last, recording what it read
(``filter``: stage 3's ``.done`` stamp, which changes whenever a shard is extracted from other audio, the feature list
and lengths, the texts and the limits; ``stats``: the filtered dump dir, its stamp included, and the BPE models). Each
first checks the stamp of what it reads against what that recorded: ``filter`` refuses features whose extraction is
unfinished or out of date, ``stats`` a filtered dump made from features or texts that changed since (stage 3 run again
without stage 4), each as one line naming the dir and the stage to run. Stages 11 and 12 check these stamps the same
way (egs/TEMPLATE/st.sh).
"""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Dict, Optional, Sequence

from salign.data.datadir import is_perturbed, read_speeds
from salign.data.kaldi import iter_table, read_table, read_texts
from salign.utils.io import InputError, atomic_dir
from salign.utils.stamp import Stamp

__all__ = ["filter_split", "feature_width", "mt_text", "write_stats", "STAMP"]

STAMP = ".stamp"  # in each output dir of stages 4 and 10, written last


def _tokenizer(model: Optional[str]):
    if model is None:
        return lambda s: s.split()
    import sentencepiece as spm

    if not Path(model).is_file():
        raise InputError("SentencePiece model not found", model, fix="run stage 5 (token lists) first")
    sp = spm.SentencePieceProcessor(model_file=str(model))
    return lambda s: sp.encode(s)


def feature_width(dump: Path) -> int:
    """The width of the features of an fbank dump: read from its first matrix (never assumed)."""
    import kaldiio

    for _, utt, value in iter_table(dump / "feats.scp"):
        try:
            return int(kaldiio.load_mat(value).shape[1])
        except Exception as exc:  # noqa: BLE001 - kaldiio raises many types on a bad ark
            raise InputError(f"cannot read the features of '{utt}' ({exc})", dump / "feats.scp",
                             fix="re-run stages 3 and 4") from None
    raise InputError("no features", dump / "feats.scp", fix="re-run stages 3 and 4")


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
    # stage 3's stamp against what it recorded: every shard finished with the stamp the merge saw (an extraction
    # interrupted, or redone from changed audio, since the merge leaves the old merged files behind)
    Stamp.recorded(feats / ".done").stale(feats, "stage 3 (features)")
    raw = (feats / "utt2num_samples").is_file() and not (feats / "utt2num_frames").is_file()
    scp_name, len_name, unit = ("wav.scp", "utt2num_samples", "samples") if raw else \
        ("feats.scp", "utt2num_frames", "frames")
    lo, hi = (min_samples, max_samples) if raw else (min_frames, max_frames)
    inputs = [feats / ".done", feats / scp_name, feats / len_name, data / f"text.{src}", data / f"text.{tgt}"]
    if (data / "utt2speed").is_file():
        inputs.append(data / "utt2speed")
    stamp = Stamp(out / STAMP, inputs, {"min": lo, "max": hi, "max_src_tokens": max_src_tokens,
                                        "max_tgt_tokens": max_tgt_tokens, "keep_all": keep_all, "subset": subset})
    stamp.identities()  # what this run reads, as it starts
    scp = read_table(feats / scp_name)
    frames = {k: int(v) for k, v in read_table(feats / len_name).items()}
    src_text = read_texts(data / f"text.{src}")  # NFC on both sides (a hand-made data dir may hold NFD text)
    tgt_text = read_texts(data / f"text.{tgt}")
    speeds = read_speeds(data)
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
        orig = [u for u in keep if not is_perturbed(speeds, u)]
        step = max(1, len(orig) // subset)
        keep = orig[::step][:subset]
    if not keep:
        raise InputError(f"no utterance left after filtering ({dict(why)})", data,
                         fix=f"check the data dir and the --min_{unit}/--max_{unit} limits")
    why["kept"] = len(keep)
    with atomic_dir(out) as tmp:
        files = {scp_name: scp, len_name: {k: str(frames[k]) for k in keep}, f"text.{src}": src_text,
                 f"text.{tgt}": tgt_text}
        if any(is_perturbed(speeds, k) for k in keep):  # mt_text leaves perturbed copies out by this file
            files["utt2speed"] = {k: f"{speeds.get(k, 1.0):g}" for k in keep}
        for name, table in files.items():
            with open(tmp / name, "w", encoding="utf-8") as f:
                f.writelines(f"{k} {table[k]}\n" for k in keep)
        with open(tmp / "filter.log", "w", encoding="utf-8") as f:
            f.writelines(f"{k}: {v}\n" for k, v in sorted(why.items()))
    stamp.write([out / name for name in files])
    return why


def write_stats(dump: Path, out: Path, src: str, tgt: str, bpemodel: Optional[str], src_bpemodel: Optional[str]
                ) -> None:
    """ESPnet shape files (speech: fbank ``frames,width`` or raw samples; texts: token counts) for one dump dir.

    These are the only shape files the recipe writes; the fbank width is read from the features. CMVN statistics
    are not copied here: training reads stage 3's ``cmvn.npz`` (ESPnet's ``feats_stats.npz`` format) where it is.
    ``dump`` must be current (its stage-4 stamp matches what it recorded); ``out/.stamp`` records what was read."""
    Stamp.recorded(dump / STAMP).stale(dump, "stage 4 (length filtering)")
    models = list(dict.fromkeys(m for m in (bpemodel, src_bpemodel) if m and Path(m).is_file()))
    stamp = Stamp(out / STAMP, [dump, *models], {"bpemodel": bpemodel, "src_bpemodel": src_bpemodel})
    stamp.identities()
    enc_tgt, enc_src = _tokenizer(bpemodel), _tokenizer(src_bpemodel or bpemodel)
    names = []
    with atomic_dir(out) as tmp:
        if (dump / "utt2num_frames").is_file():
            width = feature_width(dump)
            with open(tmp / "speech_shape", "w", encoding="utf-8") as f:
                f.writelines(f"{k} {n},{width}\n" for k, n in read_table(dump / "utt2num_frames").items())
        elif (dump / "utt2num_samples").is_file():  # ESPnet's raw shape files are the sample counts
            shutil.copyfile(dump / "utt2num_samples", tmp / "speech_shape")
        for name, lang, enc in (("text_shape", tgt, enc_tgt), ("src_text_shape", src, enc_src)):
            table = read_texts(dump / f"text.{lang}")
            with open(tmp / name, "w", encoding="utf-8") as f:
                f.writelines(f"{k} {max(1, len(enc(v)))}\n" for k, v in table.items())
        names = sorted(p.name for p in tmp.iterdir())
    stamp.write([out / name for name in names])


def mt_text(out: Path, src: str, tgt: str, dumps: Sequence[Path], src_files: Sequence[Path],
            tgt_files: Sequence[Path]) -> int:
    """Parallel text for MT pre-training: the transcripts/translations of ``dumps`` (speed-perturbed copies skipped)
    plus plain-text parallel files (one sentence per line; the source is normalised like MuST-C transcripts)."""
    from salign.text.normalize import normalize_source, normalize_target

    inputs = [p for d in dumps for p in (d / f"text.{src}", d / f"text.{tgt}", d / "utt2speed") if p.is_file()]
    stamp = Stamp(out / STAMP, inputs + [*map(Path, src_files), *map(Path, tgt_files)])
    stamp.identities()
    rows: Dict[str, tuple] = {}
    for d in dumps:
        s_tab, t_tab, speeds = read_texts(d / f"text.{src}"), read_texts(d / f"text.{tgt}"), read_speeds(d)
        for k, v in s_tab.items():
            if not is_perturbed(speeds, k):
                rows[k] = (v, t_tab[k])
    for i, (sf, tf) in enumerate(zip(src_files, tgt_files)):
        s_lines = Path(sf).read_text(encoding="utf-8-sig").splitlines()  # (LF, CRLF and CR-only line ends)
        t_lines = Path(tf).read_text(encoding="utf-8-sig").splitlines()
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
    stamp.write([out / f"text.{src}", out / f"text.{tgt}"])
    return len(rows)
