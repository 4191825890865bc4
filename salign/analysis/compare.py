"""The comparison document (``COMPARE.md``): several trained systems side by side in one Markdown table.

For each method TAG it reads ``EXP/st_TAG/decode_<task>_<set>/score/result.json`` (from ``salign.bin.score``),
``EXP/st_TAG/gap/gap.json`` (from ``salign.bin.analyze_gap``) and ``EXP/st_TAG/train.log``
(:mod:`salign.analysis.train_log`), and writes one row: ST BLEU on each test set with its 95% bootstrap interval
and the paired-bootstrap p-value against the row's baseline (:func:`baseline_of`), ST BLEU on the training subset,
MT BLEU and ASR WER on each test set, discriminator accuracy, top-layer speech→text R@1, paired−unpaired cosine gap,
top-layer linear CKA, training wall time and parameter count. Intervals and p-values are computed here
(:mod:`salign.scoring.significance`) from the hypothesis and reference files each ``result.json`` names. Missing
results (a model without an MT or ASR path, a model without gap analysis) are shown as "–". Rows trained again
with other seeds (``EXP/st_TAG_seed<N>``) add a column: the mean ST BLEU over the seeds. Under the table: what the
columns mean, the shared MT pre-training time, the sacreBLEU signatures and the reproduce command.
``python -m salign.bin.compare`` is its command line.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import yaml

from salign.analysis.train_log import TrainLog, read_train_log
from salign.scoring.score import bleu_tokenizer, match
from salign.scoring.significance import (
    DEFAULT_SAMPLES,
    DEFAULT_SEED,
    Interval,
    Resampler,
    SystemSample,
    fmt_interval,
    fmt_p,
    make_metric,
    paired_p_value,
    sample_system,
)
from salign.utils.io import InputError, atomic_write

MISSING = "–"

#: what each known tag is (other tags are shown with their name only)
DESCRIPTIONS = {
    "baseline": "MT pre-training + multi-task ST/MT/ASR, no alignment loss",
    "contrastive": "H-Align: sentence-level contrastive (InfoNCE)",
    "adversarial": "S-Align: modal network (adversarial) + mix-up, λ·L_G at face value",
    "adversarial_official": "S-Align at the official effective adversarial strength (adv_grad_scale official)",
    "ot": "AI-STA: optimal transport at inner T-enc layers",
    "multi": "several alignment losses together",
    "stock_espnet": "ESPnet's stock ST model (ESPnetSTModel), no MT pre-training",
    "llm_baseline": "speech LLM: encoder + CTC -> projector -> LM pre-trained on the text, no alignment loss",
    "llm_ot": "speech LLM + AI-STA: OT at the LM layers retrieval picks",
}

GAP_COLUMNS = ("disc acc", "R@1 top", "cos gap", "CKA top", "train time", "params")
BASE_CELL = "base"  #: the p-value cell of a baseline row itself
SEED_SUFFIX = re.compile(r"_seed(\d+)$")  #: ``<method>_seed<N>``: the row ``<method>`` trained with another seed

LEGEND = """Columns: BLEU is case-sensitive detokenised sacreBLEU (signatures below), WER is in percent on lower-cased
text without punctuation. The gap measures come from `salign.bin.analyze_gap` on the dev set: *disc acc* is the
accuracy of the model's own modal network (0.5 = speech and text indistinguishable to it; only models with one),
*R@1 top* the fraction of dev utterances whose pooled top T-enc (speech LLM: top LM layer) speech representation
retrieves its own transcript, *cos gap* the mean cosine of paired minus unpaired speech/text sentences, *CKA top*
the linear CKA of the paired top representations. *train time* is the wall time of the model's own training (from
its train.log; ≈: resumed run, sum of the logged epoch times; *N thr*: the CPU threads it ran on), excluding the
shared MT (LM) pre-training; *params* is ESPnet's count of all model parameters (including a modal network)."""

LEGEND_SIGNIFICANCE = """*ST/MT BLEU* cells: `score [low, high]`, the corpus BLEU and its 95% bootstrap confidence
interval (the 2.5th-97.5th percentile of BLEU over {n} resamples of the set's segments with replacement, seed {seed},
as sacreBLEU's `--confidence`; a cell without interval: its hypothesis or reference file was not found, listed
below). *p SET*: the paired bootstrap test of the row's ST BLEU against its baseline row (`baseline` for the salign
rows and `stock_espnet`, `llm_baseline` for the `llm_*` rows; `{base}`: the baseline row itself) on the same {n}
resamples of the same segments (sacreBLEU's `--paired-bs`); two-sided p-value, † p < 0.05: a difference larger than
resampling the test segments explains (it does not measure the variance between training seeds)."""


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


def baseline_of(tag: str) -> str:
    """The row a row's ST BLEU is tested against: ``llm_baseline`` for ``llm_*`` rows, else ``baseline``.

    A seed row ``<method>_seed<N>`` has the baseline of ``<method>`` (``baseline_seed2`` is tested against
    ``baseline``: seed variance).
    """
    return "llm_baseline" if SEED_SUFFIX.sub("", tag).startswith("llm_") else "baseline"


def seed_dirs(exp: Path, tag: str) -> List[Tuple[int, Path]]:
    """The other seeds of row ``tag``: ``(N, EXP/st_TAG_seedN)`` for every such dir, by N."""
    pattern = re.compile(rf"st_{re.escape(tag)}_seed(\d+)")
    found = [(int(m.group(1)), p) for p in exp.iterdir() if p.is_dir() and (m := pattern.fullmatch(p.name))]
    return sorted(found)


def config_seed(st_exp: Path) -> Optional[int]:
    """The ``seed`` of the training's ``config.yaml`` (None without one)."""
    path = st_exp / "config.yaml"
    if not path.is_file():
        return None
    try:
        seed = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("seed")
    except (yaml.YAMLError, AttributeError):
        return None
    return int(seed) if isinstance(seed, int) else None


def resolve(name: object, bases: Sequence[Path]) -> Optional[Path]:
    """``name`` (a path from a ``result.json``) as an existing file: absolute, or relative to one of ``bases``."""
    if not isinstance(name, str) or not name:
        return None
    path = Path(name)
    if path.is_absolute():
        return path if path.is_file() else None
    return next((b / path for b in bases if (b / path).is_file()), None)


@dataclass
class Scored:
    """One decode's segments (paired by utterance id, reference order) and its bootstrap sample."""

    utts: List[str]
    hyps: List[str]
    refs: List[str]
    tokenize: str
    sample: SystemSample


@dataclass
class Significance:
    """Intervals and paired tests for the table, each decode read and resampled once.

    ``n_samples`` resamples with ``seed`` (0 resamples: none of it). Every decode of ``n`` segments uses the one
    :class:`~salign.scoring.significance.Resampler` of ``n``: two systems on the same segments are paired.
    Relative hypothesis/reference paths of a ``result.json`` are looked up from the working directory and from the
    experiment dir's parent (the recipe dir they were written from). What could not be computed is noted in
    ``problems`` (printed under the table).
    """

    exp: Path
    n_samples: int = DEFAULT_SAMPLES
    seed: int = DEFAULT_SEED
    problems: List[str] = field(default_factory=list)
    _resamplers: Dict[int, Resampler] = field(default_factory=dict)
    _scored: Dict[Path, Optional[Scored]] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """Whether intervals and p-values are computed at all."""
        return self.n_samples > 0

    def resampler(self, n_segments: int) -> Resampler:
        """The shared resampler of ``n_segments`` segments."""
        if n_segments not in self._resamplers:
            self._resamplers[n_segments] = Resampler(n_segments, self.n_samples, self.seed)
        return self._resamplers[n_segments]

    def scored(self, result: Optional[Dict], path: Path) -> Optional[Scored]:
        """The segments and bootstrap sample of the decode whose ``result.json`` is ``path`` (None: not available)."""
        if result is None or not self.enabled or result.get("task") == "asr":
            return None
        if path not in self._scored:
            self._scored[path] = self._score(result, path)
        return self._scored[path]

    def _score(self, result: Dict, path: Path) -> Optional[Scored]:
        bases = list(dict.fromkeys([Path.cwd(), self.exp.resolve().parent]))
        hyp = resolve(result.get("hyp"), bases) or resolve(str(path.parent.parent / "1best_recog" / "text"), bases)
        ref = resolve(result.get("ref"), bases)
        if hyp is None or ref is None:
            what, name = ("hypotheses", result.get("hyp")) if hyp is None else ("references", result.get("ref"))
            decode = path.parent.parent
            try:
                decode = decode.relative_to(self.exp.parent)
            except ValueError:
                pass
            self.problems.append(f"`{decode}`: no interval, {what} file not found" + (f" (`{name}`)" if name else ""))
            return None
        utts, hyps, refs, _ = match(hyp, ref, allow_missing=True)  # missing hypotheses: empty, as when scored
        sig = re.search(r"\btok:([^|]+)", str(result.get("bleu_signature", "")))
        tokenize = sig.group(1) if sig else bleu_tokenizer(result.get("tgt_lang"))
        sample = sample_system(make_metric("bleu", tokenize), hyps, refs, self.resampler(len(utts)))
        if "bleu" in result and abs(round(sample.score, 2) - float(result["bleu"])) > 0.011:
            raise InputError(f"BLEU of {hyp} against {ref} is {sample.score:.2f} now, result.json says "
                             f"{result['bleu']}: the decode changed after scoring", path,
                             fix="re-run the scoring stage (13) of this experiment")
        return Scored(utts, hyps, refs, tokenize, sample)

    def interval(self, result: Optional[Dict], path: Path) -> Optional[Interval]:
        """The 95% interval of a decode's BLEU (None: not available)."""
        s = self.scored(result, path)
        return None if s is None else s.sample.interval()

    def p_value(self, system: Optional[Scored], baseline: Optional[Scored], what: str) -> Optional[float]:
        """Paired bootstrap p-value of ``system`` against ``baseline``, paired by utterance id (None: cannot)."""
        if system is None or baseline is None:
            return None
        if system.utts != baseline.utts:  # another order (or other segments): re-pair by id in the baseline's order
            if sorted(system.utts) != sorted(baseline.utts):
                self.problems.append(f"{what}: no p-value, the two decodes have different segments "
                                     f"({len(system.utts)} and {len(baseline.utts)})")
                return None
            by_id = dict(zip(system.utts, zip(system.hyps, system.refs)))
            hyps = [by_id[u][0] for u in baseline.utts]
            refs = [by_id[u][1] for u in baseline.utts]
            system = Scored(baseline.utts, hyps, refs, system.tokenize,
                            sample_system(make_metric("bleu", system.tokenize), hyps, refs,
                                          baseline.sample.resampler))
        if system.refs != baseline.refs or system.tokenize != baseline.tokenize:
            self.problems.append(f"{what}: no p-value, the two decodes were scored against different references "
                                 "or with different tokenizers")
            return None
        return paired_p_value(system.sample, baseline.sample)


def bleu_cell(result: Optional[Dict], path: Path, sig: Significance) -> str:
    """``12.34 [10.9, 13.8]`` (no interval when the files are missing or significance is off), or "–"."""
    interval = sig.interval(result, path)
    return fmt(value(result, "bleu")) if interval is None else fmt_interval(interval)


def result_path(st_exp: Path, task: str, test_set: str) -> Path:
    """``st_exp/decode_<task>_<set>/score/result.json``."""
    return st_exp / f"decode_{task}_{test_set}" / "score" / "result.json"


def method_row(exp: Path, tag: str, test_sets: Sequence[str], train_set: str, sig: Significance,
               methods: Sequence[str], with_seeds: bool) -> Tuple[List[str], List[Dict]]:
    """One table row for ``EXP/st_TAG`` and the translation results it used (for the signatures)."""
    st_exp = exp / f"st_{tag}"
    used: List[Dict] = []
    st_cells: List[str] = []
    base = baseline_of(tag)
    for test_set in test_sets:
        st = read_score(st_exp, "st", test_set)
        path = result_path(st_exp, "st", test_set)
        st_cells.append(bleu_cell(st, path, sig))
        if sig.enabled:
            if tag == base:
                st_cells.append(BASE_CELL if st is not None else MISSING)
            elif base not in methods or st is None:
                st_cells.append(MISSING)
            else:
                base_path = result_path(exp / f"st_{base}", "st", test_set)
                p = sig.p_value(sig.scored(st, path), sig.scored(read_score(exp / f"st_{base}", "st", test_set),
                                                                 base_path), f"`{tag}` vs `{base}` on {test_set}")
                st_cells.append(MISSING if p is None else fmt_p(p))
        used += [st] if st is not None else []
    st_train = read_score(st_exp, "st", train_set)
    train_cell = bleu_cell(st_train, result_path(st_exp, "st", train_set), sig)
    used += [st_train] if st_train is not None else []
    seed_cells = [seed_mean_cell(exp, tag, test_sets[0])] if with_seeds else []
    mt_cells, asr_cells = [], []
    for test_set in test_sets:
        mt = read_score(st_exp, "mt", test_set)
        mt_cells.append(bleu_cell(mt, result_path(st_exp, "mt", test_set), sig))
        used += [mt] if mt is not None else []
        asr_cells.append(fmt(value(read_score(st_exp, "asr", test_set), "wer")))
    gap_path = st_exp / "gap" / "gap.json"
    log = read_train_log(st_exp / "train.log")
    row = [f"`{tag}`", DESCRIPTIONS.get(SEED_SUFFIX.sub("", tag), ""), *st_cells, train_cell, *seed_cells,
           *mt_cells, *asr_cells, *gap_cells(read_json(gap_path), gap_path), fmt_train_time(log),
           fmt_params(log.params if log else None)]
    return row, used


def seed_scores(exp: Path, tag: str, test_set: str) -> List[Tuple[str, float]]:
    """ST BLEU of row ``tag`` and of each of its seed dirs on ``test_set``: ``(label, bleu)`` where decoded."""
    runs = [(config_seed(exp / f"st_{tag}"), exp / f"st_{tag}")]
    runs += [(config_seed(d) if config_seed(d) is not None else n, d) for n, d in seed_dirs(exp, tag)]
    out = []
    for n, d in runs:
        bleu = value(read_score(d, "st", test_set), "bleu")
        if bleu is not None:
            out.append((f"`{d.name}`" + (f" (seed {n})" if n is not None else ""), bleu))
    return out


def seed_mean_cell(exp: Path, tag: str, test_set: str) -> str:
    """``0.25 (n=2)``: mean ST BLEU over the row's seeds, or "–" for a row trained once."""
    scores = seed_scores(exp, tag, test_set)
    if not seed_dirs(exp, tag) or not scores:
        return MISSING
    return f"{fmt(sum(b for _, b in scores) / len(scores))} (n={len(scores)})"


def seed_notes(exp: Path, methods: Sequence[str], test_sets: Sequence[str]) -> List[str]:
    """One line per row with seed dirs: each seed's ST BLEU on each test set."""
    lines = []
    for tag in methods:
        if not seed_dirs(exp, tag):
            continue
        sets = []
        for test_set in test_sets:
            scores = seed_scores(exp, tag, test_set)
            if scores:
                mean = sum(b for _, b in scores) / len(scores)
                sets.append(f"{test_set}: " + ", ".join(f"{fmt(b)} {label}" for label, b in scores)
                            + f"; mean {fmt(mean)}")
        lines.append(f"- `{tag}`: " + ("; ".join(sets) if sets else "no ST decodes of the test sets"))
    return lines


def asr_pretraining_line(asr_exp: Path) -> str:
    """The shared ASR pre-training: its wall time, and where its early stopping stopped it (from its train.log)."""
    path = asr_exp / "train.log"
    log = read_train_log(path)
    line = (f"Shared ASR pre-training (`{asr_exp}`, initialises the acoustic encoder and CTC of every row): "
            f"{fmt_train_time(log)}")
    valid = [(e.epoch, e.stats.get("valid", {}).get("loss")) for e in (log.epochs if log else [])]
    valid = [(n, v) for n, v in valid if n is not None and v is not None]
    if valid:
        best_epoch, best = min(valid, key=lambda nv: nv[1])
        stopped = re.search(r"\[Early stopping\][^\n]*", path.read_text(encoding="utf-8", errors="replace"))
        line += (f"; {len(valid)} epochs, "
                 + ("stopped by early stopping on the dev CTC loss" if stopped else "ran to its max_epoch")
                 + f"; best dev CTC loss {best:.2f} at epoch {best_epoch} (the checkpoint every row starts from)")
    return line + "."


def compare_table(exp: Path, methods: Sequence[str], command: str, title: str, notes: Sequence[str] = (),
                  test_sets: Union[str, Sequence[str]] = ("tst-COMMON",), train_set: str = "train_subset",
                  mt_exp: Optional[Path] = None, lm_exp: Optional[Path] = None, n_bootstrap: int = DEFAULT_SAMPLES,
                  seed: int = DEFAULT_SEED, asr_exp: Optional[Path] = None) -> str:
    """The whole Markdown document (``mt_exp``/``asr_exp``/``lm_exp``: the shared MT / ASR / LM pre-training, whose
    time is given).

    ``test_sets``: the sets of the per-set columns, in order (a string: one set); the seeds column uses the first.
    ``n_bootstrap`` resamples with ``seed`` for the intervals and p-values (0: plain scores, no p-value columns).
    """
    test_sets = [test_sets] if isinstance(test_sets, str) else list(test_sets)
    if not exp.is_dir():
        raise InputError("experiment dir does not exist", exp, fix="pass the dir that holds st_<method>/ (--exp)")
    if not methods:
        raise InputError("no methods given", fix='e.g. --methods "baseline adversarial"')
    if not test_sets:
        raise InputError("no test sets given", fix='e.g. --test_sets "tst-COMMON tst-HE"')
    if n_bootstrap < 0:
        raise InputError(f"--n_bootstrap {n_bootstrap}: must be >= 0", fix="e.g. 1000 (0: no intervals)")
    missing = [m for m in methods if not (exp / f"st_{m}").is_dir()]
    if missing:
        raise InputError(f"no experiment dir for {', '.join(missing)}", exp,
                         fix="train them first, or leave them out of --methods")
    sig = Significance(exp, n_bootstrap, seed)
    with_seeds = any(seed_dirs(exp, m) for m in methods)
    head = ["Method", "What"]
    for test_set in test_sets:
        head += [f"ST BLEU {test_set}"] + ([f"p {test_set}"] if sig.enabled else [])
    head += [f"ST BLEU {train_set}"] + ([f"ST BLEU {test_sets[0]} seeds"] if with_seeds else [])
    head += [f"MT BLEU {s}" for s in test_sets] + [f"ASR WER {s}" for s in test_sets] + list(GAP_COLUMNS)
    lines = [f"# {title}", ""]
    for note in notes:
        lines += [note, ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    results: List[Dict] = []
    for tag in methods:
        row, used = method_row(exp, tag, test_sets, train_set, sig, methods, with_seeds)
        results += used
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", LEGEND, ""]
    if sig.enabled:
        lines += [LEGEND_SIGNIFICANCE.format(n=sig.n_samples, seed=sig.seed, base=BASE_CELL), ""]
    if with_seeds:
        lines += [f"*ST BLEU {test_sets[0]} seeds*: the mean ST BLEU of the row over its training seeds (n: how many;"
                  " the row's own dir and each `st_<row>_seed<N>` dir, same config, another seed); each seed's "
                  "score:", "", *seed_notes(exp, methods, test_sets), ""]
    if sig.problems:
        lines += ["Not computed:", "", *[f"- {p}" for p in sig.problems], ""]
    if mt_exp is not None:
        lines += [f"Shared MT pre-training (`{mt_exp}`, initialises every salign row): "
                  f"{fmt_train_time(read_train_log(mt_exp / 'train.log'))}.",
                  ""]
    if asr_exp is not None:
        lines += [asr_pretraining_line(asr_exp), ""]
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
    if sig.enabled and sigs:
        lines.append(f"- intervals and paired test: `bs:{sig.n_samples}|seed:{sig.seed}` (bootstrap resamples, seed)")
    lines += ["", "Reproduce:", "", "```bash", command, "```", ""]
    return "\n".join(lines)


def write_comparison(out: Path, exp: Path, methods: Sequence[str], command: str, title: str,
                     notes: Sequence[str] = (), test_sets: Union[str, Sequence[str]] = ("tst-COMMON",),
                     train_set: str = "train_subset", mt_exp: Optional[Path] = None, lm_exp: Optional[Path] = None,
                     n_bootstrap: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED,
                     asr_exp: Optional[Path] = None) -> str:
    """Build the document (:func:`compare_table`), write it to ``out`` atomically and return it."""
    text = compare_table(exp, methods, command, title, notes, test_sets, train_set, mt_exp, lm_exp, n_bootstrap,
                         seed, asr_exp)
    with atomic_write(out) as f:
        f.write(text)
    return text
