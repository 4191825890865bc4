"""The comparison document (``COMPARE.md``): several trained systems side by side in one Markdown table.

For each method TAG it reads ``EXP/st_TAG/decode_<task>_<set>/score/result.json`` (from ``salign.bin.score``),
``EXP/st_TAG/gap/gap.json`` (from ``salign.bin.analyze_gap``) and ``EXP/st_TAG/train.log``
(:mod:`salign.analysis.train_log`), and writes one row: ST BLEU on the test set and on the training subset, MT BLEU
and ASR WER on the test set, discriminator accuracy, top-layer speech→text R@1, paired−unpaired cosine gap, top-layer
linear CKA, training wall time and parameter count. Missing results (a model without an MT or ASR path, a model
without gap analysis) are shown as "–". Under the table: what the columns mean, the shared MT pre-training time, the
sacreBLEU signatures and the reproduce command. ``python -m salign.bin.compare`` is its command line.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from salign.analysis.train_log import TrainLog, read_train_log
from salign.utils.io import InputError, atomic_write

MISSING = "–"

#: what each known tag is (other tags are shown with their name only)
DESCRIPTIONS = {
    "baseline": "MT pre-training + multi-task ST/MT/ASR, no alignment loss",
    "contrastive": "H-Align: sentence-level contrastive (InfoNCE)",
    "adversarial": "S-Align: modal network (adversarial) + mix-up",
    "ot": "AI-STA: optimal transport at inner T-enc layers",
    "multi": "several alignment losses together",
    "stock_espnet": "ESPnet's stock ST model (ESPnetSTModel), no MT pre-training",
    "llm_baseline": "speech LLM: encoder + CTC -> projector -> LM pre-trained on the text, no alignment loss",
    "llm_ot": "speech LLM + AI-STA: OT at the LM layers retrieval picks",
}

COLUMNS = ("Method", "What", "ST BLEU {test}", "ST BLEU {train}", "MT BLEU {test}", "ASR WER {test}", "disc acc",
           "R@1 top", "cos gap", "CKA top", "train time", "params")

LEGEND = """Columns: BLEU is case-sensitive detokenised sacreBLEU (signatures below), WER is in percent on lower-cased
text without punctuation. The gap measures come from `salign.bin.analyze_gap` on the dev set: *disc acc* is the
accuracy of the model's own modal network (0.5 = speech and text indistinguishable to it; only models with one),
*R@1 top* the fraction of dev utterances whose pooled top T-enc (speech LLM: top LM layer) speech representation
retrieves its own transcript, *cos gap* the mean cosine of paired minus unpaired speech/text sentences, *CKA top*
the linear CKA of the paired top representations. *train time* is the wall time of the model's own training (from
its train.log; ≈: resumed run, sum of the logged epoch times; *N thr*: the CPU threads it ran on), excluding the
shared MT (LM) pre-training; *params* is ESPnet's count of all model parameters (including a modal network)."""


def read_json(path: Path) -> Optional[Dict]:
    """The JSON object in ``path``, or None when the file does not exist."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"not valid JSON ({exc})", path, fix="re-run the stage that writes it") from None
    if not isinstance(data, dict):
        raise InputError("not a JSON object", path, fix="re-run the stage that writes it")
    return data


def read_score(st_exp: Path, task: str, test_set: str) -> Optional[Dict]:
    """``result.json`` of one decode, checked to be the task it claims to be."""
    path = st_exp / f"decode_{task}_{test_set}" / "score" / "result.json"
    result = read_json(path)
    if result is not None and result.get("task") != task:
        raise InputError(f"task is {result.get('task')!r}, expected {task!r}", path, fix="re-run salign.bin.score")
    return result


def fmt_time(seconds: Optional[float], exact: bool = True, threads: Optional[int] = None) -> str:
    """``45 s``, ``12.3 min`` or ``2.50 h`` (prefixed with ≈ when not exact; ``, N thr`` when known)."""
    if seconds is None:
        return MISSING
    if seconds < 120:
        s = f"{seconds:.0f} s"
    elif seconds < 7200:
        s = f"{seconds / 60:.1f} min"
    else:
        s = f"{seconds / 3600:.2f} h"
    s = s if exact else f"≈{s}"
    return f"{s}, {threads} thr" if threads else s


def fmt_train_time(log: Optional[TrainLog]) -> str:
    """The wall time of a training log as :func:`fmt_time` writes it ("–" without a log)."""
    if log is None:
        return MISSING
    seconds, exact = log.wall_time()
    return fmt_time(seconds, exact, log.threads)


def fmt_params(n: Optional[float]) -> str:
    """``27.31 M`` / ``606 K``."""
    if n is None:
        return MISSING
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.0f} K"


def fmt(value: Optional[float], digits: int = 2) -> str:
    """A number with ``digits`` decimals, or "–"."""
    return MISSING if value is None else f"{round(float(value), digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.00"


def value(result: Optional[Dict], key: str) -> Optional[float]:
    """``result[key]`` as a float, or None when there is no result (or no such key)."""
    if not result or result.get(key) is None:
        return None
    return float(result[key])


def gap_cells(gap: Optional[Dict], path: Path) -> List[str]:
    """disc acc, R@1 top, cos gap, CKA top from a ``gap.json``."""
    if gap is None:
        return [MISSING] * 4
    try:
        disc = gap.get("discriminator")
        if disc:
            accs = [f"{float(d['acc']):.2f}" for d in disc.values()]
            acc = accs[0] if len(accs) == 1 else "/".join(accs)
        else:
            acc = MISSING
        r1 = gap["retrieval"]["top"]["r1"]
        cos = gap["cosine"]["top"]["gap"]
        cka = gap["cka"]["top"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"not a gap.json from salign.bin.analyze_gap (missing {exc})", path,
                         fix="re-run stage 15 (salign.bin.analyze_gap)") from None
    return [acc, fmt(r1), fmt(cos, 3), fmt(cka)]


def method_row(exp: Path, tag: str, test_set: str, train_set: str) -> Tuple[List[str], List[Dict]]:
    """One table row for ``EXP/st_TAG`` and the translation results it used (for the signatures)."""
    st_exp = exp / f"st_{tag}"
    st = read_score(st_exp, "st", test_set)
    st_train = read_score(st_exp, "st", train_set)
    mt = read_score(st_exp, "mt", test_set)
    asr = read_score(st_exp, "asr", test_set)
    gap_path = st_exp / "gap" / "gap.json"
    log = read_train_log(st_exp / "train.log")
    row = [f"`{tag}`", DESCRIPTIONS.get(tag, ""),
           fmt(value(st, "bleu")), fmt(value(st_train, "bleu")), fmt(value(mt, "bleu")), fmt(value(asr, "wer")),
           *gap_cells(read_json(gap_path), gap_path), fmt_train_time(log), fmt_params(log.params if log else None)]
    return row, [r for r in (st, st_train, mt) if r is not None]


def compare_table(exp: Path, methods: Sequence[str], command: str, title: str, notes: Sequence[str] = (),
                  test_set: str = "tst-COMMON", train_set: str = "train_subset",
                  mt_exp: Optional[Path] = None, lm_exp: Optional[Path] = None) -> str:
    """The whole Markdown document (``mt_exp``/``lm_exp``: the shared MT / LM pre-training, whose time is given)."""
    if not exp.is_dir():
        raise InputError("experiment dir does not exist", exp, fix="pass the dir that holds st_<method>/ (--exp)")
    if not methods:
        raise InputError("no methods given", fix='e.g. --methods "baseline adversarial"')
    missing = [m for m in methods if not (exp / f"st_{m}").is_dir()]
    if missing:
        raise InputError(f"no experiment dir for {', '.join(missing)}", exp,
                         fix="train them first, or leave them out of --methods")
    head = [c.format(test=test_set, train=train_set) for c in COLUMNS]
    lines = [f"# {title}", ""]
    for note in notes:
        lines += [note, ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    results: List[Dict] = []
    for tag in methods:
        row, used = method_row(exp, tag, test_set, train_set)
        results += used
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", LEGEND, ""]
    if mt_exp is not None:
        lines += [f"Shared MT pre-training (`{mt_exp}`, initialises every salign row): "
                  f"{fmt_train_time(read_train_log(mt_exp / 'train.log'))}.",
                  ""]
    if lm_exp is not None:
        lines += [f"Shared LM pre-training on the same text (`{lm_exp}`, initialises the LM of every speech-LLM "
                  f"row): {fmt_train_time(read_train_log(lm_exp / 'train.log'))}.",
                  ""]
    sigs: Dict[str, List[str]] = {}
    for r in results:
        for key, name in (("bleu_signature", "BLEU"), ("bleu_lc_signature", "BLEU (lc)")):
            if key in r and str(r[key]) not in sigs.setdefault(name, []):
                sigs[name].append(str(r[key]))
    lines += ["sacreBLEU signatures:", ""]
    lines += [f"- {name}: `{s}`" for name, ss in sigs.items() for s in ss] or ["- (no translation results yet)"]
    lines += ["", "Reproduce:", "", "```bash", command, "```", ""]
    return "\n".join(lines)


def write_comparison(out: Path, exp: Path, methods: Sequence[str], command: str, title: str,
                     notes: Sequence[str] = (), test_set: str = "tst-COMMON", train_set: str = "train_subset",
                     mt_exp: Optional[Path] = None, lm_exp: Optional[Path] = None) -> str:
    """Build the document (:func:`compare_table`), write it to ``out`` atomically and return it."""
    text = compare_table(exp, methods, command, title, notes, test_set, train_set, mt_exp, lm_exp)
    with atomic_write(out) as f:
        f.write(text)
    return text
