"""Score hypotheses against references (sacreBLEU for ST/MT, jiwer for ASR) and collect results into a table.

Hypotheses and references are Kaldi-style ``utt text`` files, matched by utterance id. Translation scores are
sacreBLEU corpus BLEU (case-sensitive and lower-cased), chrF and TER, each with its signature; ASR scores are WER and
CER on text normalised by :func:`normalize_asr` (lower-case, punctuation removed). :func:`collect` reads every
``result.json`` below an experiment dir and :func:`results_table` renders the Markdown results table.
"""
from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import jiwer
from sacrebleu.metrics import BLEU, CHRF, TER

from salign.data.kaldi import read_texts
from salign.utils.io import InputError, PathLike, atomic_write

TASKS = ("st", "mt", "asr")
DEFAULT_TOKENIZE = {"zh": "zh", "ja": "ja-mecab", "ko": "ko-mecab"}  # sacreBLEU tokenizer per target language
MISSING = "–"
_SPACES = re.compile(r"\s+")


def read_text(path: PathLike) -> Dict[str, str]:
    """A Kaldi text file as ``{utt: text}`` (file order; :mod:`salign.data.kaldi` rules, every text in NFC: hypotheses
    and references alike, so decomposed accents on either side score as the same characters); an empty file is an
    error."""
    out = read_texts(path, fix="check the decode dir or the reference path")
    if not out:
        raise InputError("no utterances", path, fix="check that decoding finished")
    return out


def match(hyp_path: PathLike, ref_path: PathLike, allow_missing: bool = False) -> Tuple[List[str], List[str],
                                                                                          List[str], int]:
    """Pair hypotheses with references by id: ``(utts, hyps, refs, num_missing)`` in reference order.

    A hypothesis for an id absent from the reference is always an error; a reference id without hypothesis is an
    error unless ``allow_missing`` (then it counts as an empty hypothesis).
    """
    hyp, ref = read_text(hyp_path), read_text(ref_path)
    for utt in hyp:
        if utt not in ref:
            raise InputError(f"utterance '{utt}' is not in the reference {ref_path}", hyp_path,
                             fix="score against the reference of the same test set")
    missing = [u for u in ref if u not in hyp]
    if missing and not allow_missing:
        raise InputError(f"no hypothesis for utterance '{missing[0]}' ({len(missing)} of {len(ref)} missing)",
                         hyp_path, fix="re-run the failed decoding jobs, or pass --allow_missing to score them "
                                       "as empty")
    utts = list(ref)
    return utts, [hyp.get(u, "") for u in utts], [ref[u] for u in utts], len(missing)


def score_translation(hyps: Sequence[str], refs: Sequence[str], tokenize: str = "13a") -> Dict[str, object]:
    """sacreBLEU corpus BLEU (cased and lower-cased), chrF and TER, with signatures and BLEU details."""
    out: Dict[str, object] = {}
    try:
        bleus = (("bleu", BLEU(tokenize=tokenize)), ("bleu_lc", BLEU(tokenize=tokenize, lowercase=True)))
    except (KeyError, RuntimeError, ImportError, SystemExit):
        raise InputError(f"sacreBLEU tokenizer '{tokenize}' is unknown or needs extra packages",
                         fix="use one of 13a, intl, zh, char, none, or pip install 'sacrebleu[ja,ko]'") from None
    for key, metric in bleus:
        s = metric.corpus_score(list(hyps), [list(refs)])
        out[key] = round(s.score, 2)
        out[f"{key}_signature"] = str(metric.get_signature())
        out[f"{key}_details"] = {"precisions": [round(p, 2) for p in s.precisions], "bp": round(s.bp, 4),
                                 "sys_len": s.sys_len, "ref_len": s.ref_len}
    chrf, ter = CHRF(), TER()
    out["chrf"] = round(chrf.corpus_score(list(hyps), [list(refs)]).score, 2)
    out["chrf_signature"] = str(chrf.get_signature())
    out["ter"] = round(ter.corpus_score(list(hyps), [list(refs)]).score, 2)
    out["ter_signature"] = str(ter.get_signature())
    return out


def normalize_asr(text: str) -> str:
    """Lower-case, drop punctuation (keeping word-internal apostrophes such as "don't"), squeeze spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    chars = []
    for i, ch in enumerate(text):
        if unicodedata.category(ch).startswith("P"):
            inner = ch in "'’" and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
            chars.append("'" if inner else " ")
        else:
            chars.append(ch)
    return _SPACES.sub(" ", "".join(chars)).strip()


def _edit_counts(refs: List[str], hyps: List[str], chars: bool) -> Dict[str, int]:
    """Substitutions, deletions, insertions and reference length; empty references count insertions only."""
    counts = {"sub": 0, "del": 0, "ins": 0, "ref_len": 0}
    pairs = [(r, h) for r, h in zip(refs, hyps) if r]
    for r, h in zip(refs, hyps):
        if not r:
            counts["ins"] += len(h) if chars else len(h.split())
    if pairs:
        proc = (jiwer.process_characters if chars else jiwer.process_words)([r for r, _ in pairs],
                                                                            [h for _, h in pairs])
        counts["sub"], counts["del"], counts["ins"] = (proc.substitutions, proc.deletions,
                                                       proc.insertions + counts["ins"])
        counts["ref_len"] = proc.hits + proc.substitutions + proc.deletions
    return counts


def score_asr(hyps: Sequence[str], refs: Sequence[str]) -> Dict[str, object]:
    """Corpus WER and CER (percent) with jiwer on normalised text, plus the edit counts."""
    h = [normalize_asr(x) for x in hyps]
    r = [normalize_asr(x) for x in refs]
    out: Dict[str, object] = {"normalization": "lower-case, punctuation removed"}
    for key, chars in (("wer", False), ("cer", True)):
        c = _edit_counts(r, h, chars)
        errors = c["sub"] + c["del"] + c["ins"]
        out[key] = round(100.0 * errors / c["ref_len"], 2) if c["ref_len"] else (0.0 if errors == 0 else 100.0)
        out[f"{key}_counts"] = c
    return out


def score_files(task: str, hyp: PathLike, ref: PathLike, allow_missing: bool = False, bleu_tokenize: str = "13a",
                test_set: str = "", model: str = "", tgt_lang: Optional[str] = None) -> Dict[str, object]:
    """Score one decode: everything that goes into ``result.json``."""
    if task not in TASKS:
        raise InputError(f"unknown task '{task}'", fix=f"use one of {', '.join(TASKS)}")
    utts, hyps, refs, missing = match(hyp, ref, allow_missing)
    result: Dict[str, object] = {"task": task, "set": test_set, "model": model, "tgt_lang": tgt_lang,
                                 "hyp": str(hyp), "ref": str(ref), "num_utts": len(utts), "num_missing": missing}
    result.update(score_asr(hyps, refs) if task == "asr" else score_translation(hyps, refs, bleu_tokenize))
    return result


def format_result(r: Dict[str, object]) -> str:
    """Human-readable ``result.txt``."""
    lines = [f"task={r['task']} set={r['set']} model={r['model']} utterances={r['num_utts']} "
             f"missing={r['num_missing']}", f"hyp: {r['hyp']}", f"ref: {r['ref']}"]
    if r["task"] == "asr":
        for key in ("wer", "cer"):
            c = r[f"{key}_counts"]
            lines.append(f"{key.upper()} = {r[key]:.2f} % (sub {c['sub']}, del {c['del']}, ins {c['ins']}, "
                         f"ref {c['ref_len']}; {r['normalization']})")
    else:
        for key, name in (("bleu", "BLEU"), ("bleu_lc", "BLEU (lower-cased)")):
            d = r[f"{key}_details"]
            lines.append(f"{name} = {r[key]:.2f} {'/'.join(f'{p:.1f}' for p in d['precisions'])} "
                         f"(BP = {d['bp']:.3f} hyp_len = {d['sys_len']} ref_len = {d['ref_len']})  "
                         f"{r[f'{key}_signature']}")
        lines.append(f"chrF2 = {r['chrf']:.2f}  {r['chrf_signature']}")
        lines.append(f"TER = {r['ter']:.2f}  {r['ter_signature']}")
    return "\n".join(lines) + "\n"


def collect(expdir: PathLike) -> List[Dict[str, object]]:
    """Every ``result.json`` below ``expdir`` (sorted by path), each with its ``path`` added."""
    expdir = Path(expdir)
    if not expdir.is_dir():
        raise InputError("experiment dir does not exist", expdir, fix="pass the dir that holds the decode dirs")
    results = []
    for p in sorted(expdir.rglob("result.json")):
        try:
            r = json.loads(p.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(f"not valid JSON ({exc})", p, fix="re-run scoring for this decode dir") from None
        if not isinstance(r, dict) or r.get("task") not in TASKS:
            raise InputError("not a salign result.json (no valid 'task')", p, fix="re-run salign.bin.score")
        results.append(dict(r, path=str(p)))
    if not results:
        raise InputError("no result.json found below it", expdir, fix="run the scoring stage first")
    return results


COLUMNS = (("ST BLEU", "st", "bleu"), ("ST BLEU (lc)", "st", "bleu_lc"), ("ST chrF", "st", "chrf"),
           ("MT BLEU", "mt", "bleu"), ("MT BLEU (lc)", "mt", "bleu_lc"), ("ASR WER", "asr", "wer"))


def results_table(results: Sequence[Dict[str, object]], command: str, title: str = "Results") -> str:
    """Markdown: one row per (model, test set), the metric columns, the signatures and the reproduce command."""
    models = sorted({str(r.get("model") or "") for r in results})
    show_model = len(models) > 1
    cells: Dict[Tuple[str, str], Dict[str, str]] = {}
    for r in results:
        row = cells.setdefault((str(r.get("model") or ""), str(r.get("set") or "")), {})
        for name, task, key in COLUMNS:
            if r["task"] == task and key in r:
                row[name] = f"{float(r[key]):.2f}"
    head = (["Model"] if show_model else []) + ["Test set"] + [c[0] for c in COLUMNS]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for (model, test_set), row in sorted(cells.items()):
        vals = ([model] if show_model else []) + [test_set or "(unnamed)"] + [row.get(c[0], MISSING)
                                                                               for c in COLUMNS]
        lines.append("| " + " | ".join(vals) + " |")
    sigs: Dict[str, List[str]] = {}
    for r in results:
        for key, name in (("bleu_signature", "BLEU"), ("bleu_lc_signature", "BLEU (lc)"),
                          ("chrf_signature", "chrF"), ("ter_signature", "TER")):
            if key in r and r[key] not in sigs.setdefault(name, []):
                sigs[name].append(str(r[key]))
    lines += ["", "sacreBLEU signatures:", ""]
    lines += [f"- {name}: `{s}`" for name, ss in sigs.items() for s in ss] or ["- (no translation results)"]
    if any(r["task"] == "asr" for r in results):
        lines.append("- WER: jiwer, lower-cased, punctuation removed")
    lines += ["", "Reproduce:", "", "```bash", command, "```", ""]
    return "\n".join(lines)


def bleu_tokenizer(tgt_lang: Optional[str], bleu_tokenize: Optional[str] = None) -> str:
    """The sacreBLEU tokenizer: ``bleu_tokenize`` if given, else the one for ``tgt_lang`` (zh/ja/ko), else 13a."""
    return bleu_tokenize or DEFAULT_TOKENIZE.get(tgt_lang or "", "13a")


def score_decode(task: str, hyp: Path, ref: Path, out: PathLike, allow_missing: bool = False,
                 bleu_tokenize: Optional[str] = None, test_set: Optional[str] = None, model: str = "",
                 tgt_lang: Optional[str] = None) -> str:
    """Score one decode into ``out/result.json`` and ``out/result.txt`` (atomically); return the text.

    ``test_set`` defaults to the name of the reference's directory.
    """
    out = Path(out)
    if test_set is None:
        test_set = Path(ref).resolve().parent.name
    result = score_files(task, hyp, ref, allow_missing, bleu_tokenizer(tgt_lang, bleu_tokenize), test_set, model,
                         tgt_lang)
    text = format_result(result)
    with atomic_write(out / "result.json") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with atomic_write(out / "result.txt") as f:
        f.write(text)
    return text


def write_results_table(expdir: PathLike, out: PathLike, command: str, title: str = "Results") -> str:
    """Collect every ``result.json`` below ``expdir`` into the Markdown table ``out`` (atomically); return it."""
    table = results_table(collect(expdir), command, title)
    with atomic_write(out) as f:
        f.write(table)
    return table
