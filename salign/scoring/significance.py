"""Bootstrap 95% confidence intervals of corpus BLEU / chrF and the paired bootstrap test of two systems.

Everything is computed from sacreBLEU's own segment statistics (``Metric._extract_corpus_statistics``) and score
function (``Metric._compute_score_from_stats``), the machinery of ``sacrebleu --paired-bs``
(:mod:`sacrebleu.significance`), so the scores are exactly the corpus scores ``salign.bin.score`` reports:

* :func:`bootstrap_ci`: ``n_samples`` resamples of the segments (with replacement, seeded), the corpus score of each;
  the interval is the 2.5th-97.5th percentile of those scores, picked as :func:`sacrebleu.significance.estimate_ci`
  picks them (``Interval.mean`` ± ``Interval.half_width`` is what sacreBLEU prints as ``μ ± 95% CI``).
* :func:`paired_bootstrap`: both systems are scored on the *same* resamples of the same segments (paired) and the
  p-value is sacreBLEU's (Koehn 2004 / Moses ``bootstrap-hypothesis-difference-significance.pl``): the resampled
  absolute differences, shifted to mean zero (the null hypothesis), compared with the observed absolute difference;
  two-sided. One deliberate difference: a resample whose shifted difference *equals* the observed one counts as at
  least as extreme (``>=``, the usual definition of a p-value). sacreBLEU counts only ``>``, which gives two
  identical systems (or two systems at BLEU 0 on every resample) p = 1/(n+1), "significant"; here they get p = 1.
  Whenever no resample ties, the p-value equals sacreBLEU's ``_paired_bs_test`` with the same seed (tested).

Resampling is deterministic: the indices come from ``numpy.random.default_rng(seed)`` exactly as in sacreBLEU
(``rng.choice(n, size=(n_samples, n), replace=True)``), so one :class:`Resampler` serves every system scored on the
same segments, and the same seed gives the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.metrics.base import Metric
from sacrebleu.significance import estimate_ci

from salign.scoring.score import match
from salign.utils.io import InputError, PathLike

DEFAULT_SAMPLES = 1000  #: sacreBLEU's default number of paired-bootstrap resamples
DEFAULT_SEED = 12345  #: sacreBLEU's default seed (SACREBLEU_SEED)
METRICS = ("bleu", "chrf")
ALPHA = 0.05  #: significance level of :attr:`PairedResult.significant`
_TIE = 1e-9  # resampled differences within this of the observed one are ties (they count as extreme)


def make_metric(name: str = "bleu", tokenize: str = "13a") -> Metric:
    """A sacreBLEU metric as ``salign.bin.score`` uses it: cased BLEU with ``tokenize``, or chrF (chrF2, default)."""
    if name == "bleu":
        try:
            return BLEU(tokenize=tokenize)
        except (KeyError, RuntimeError, ImportError, SystemExit):
            raise InputError(f"sacreBLEU tokenizer '{tokenize}' is unknown or needs extra packages",
                             fix="use one of 13a, intl, zh, char, none, or pip install 'sacrebleu[ja,ko]'") from None
    if name == "chrf":
        return CHRF()
    raise InputError(f"unknown metric '{name}'", fix=f"use one of {', '.join(METRICS)}")


def segment_stats(metric: Metric, hyps: Sequence[str], refs: Sequence[str]) -> np.ndarray:
    """sacreBLEU's sufficient statistics of each segment, ``(n_segments, n_stats)`` (one reference per segment)."""
    if len(hyps) != len(refs):
        raise InputError(f"{len(hyps)} hypotheses for {len(refs)} references",
                         fix="pair hypotheses and references by utterance id (salign.scoring.score.match)")
    if not hyps:
        raise InputError("no segments to score", fix="check that decoding finished")
    return np.asarray(metric._extract_corpus_statistics(list(hyps), [list(refs)]), dtype=np.float64)


class Resampler:
    """``n_samples`` seeded bootstrap resamples of ``n_segments`` segments, shared by every system scored on them.

    ``indices`` are sacreBLEU's (same generator, same call); each resample is kept as a count per segment
    (``counts[s, i]``: how often segment i is drawn in resample s), so a resample's corpus statistics are one matrix
    product with the segment statistics.
    """

    def __init__(self, n_segments: int, n_samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> None:
        if n_segments < 1 or n_samples < 1:
            raise InputError(f"cannot resample {n_segments} segments {n_samples} times",
                             fix="give at least one segment and one resample")
        self.n_segments, self.n_samples, self.seed = n_segments, n_samples, seed
        rng = np.random.default_rng(seed)
        self.indices = rng.choice(n_segments, size=(n_samples, n_segments), replace=True)
        self.counts = np.zeros((n_samples, n_segments), dtype=np.float64)
        np.add.at(self.counts, (np.arange(n_samples)[:, None], self.indices), 1.0)

    def scores(self, metric: Metric, stats: np.ndarray) -> np.ndarray:
        """The corpus score of each resample, from the segment statistics ``stats`` (:func:`segment_stats`)."""
        if stats.shape[0] != self.n_segments:
            raise InputError(f"statistics of {stats.shape[0]} segments for a resampler of {self.n_segments}",
                             fix="score both systems on the same segments")
        totals = self.counts @ stats  # integer counts: exact in float64
        return np.array([metric._compute_score_from_stats(row).score for row in totals], dtype=np.float64)


@dataclass(frozen=True)
class Interval:
    """A corpus score with its bootstrap 95% confidence interval ``[low, high]``."""

    score: float  #: the corpus score of all segments
    low: float  #: 2.5th percentile of the resampled scores
    high: float  #: 97.5th percentile
    mean: float  #: mean of the resampled scores (sacreBLEU's μ)
    n_samples: int
    seed: int
    n_segments: int

    @property
    def half_width(self) -> float:
        """Half the interval's width: sacreBLEU's "± 95% CI" (around :attr:`mean`)."""
        return 0.5 * (self.high - self.low)

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in ``[low, high]``."""
        return self.low <= value <= self.high


@dataclass(frozen=True)
class PairedResult:
    """The paired bootstrap test of a system against a baseline on the same segments."""

    system: Interval
    baseline: Interval
    p_value: float  #: two-sided: the chance of a difference at least this large if the systems were equally good

    @property
    def difference(self) -> float:
        """System score minus baseline score."""
        return self.system.score - self.baseline.score

    @property
    def significant(self) -> bool:
        """p < 0.05."""
        return self.p_value < ALPHA


@dataclass(frozen=True)
class SystemSample:
    """One system on one set of segments: its corpus score and its score on each resample of a :class:`Resampler`."""

    score: float
    resampled: np.ndarray
    resampler: Resampler

    def interval(self) -> Interval:
        """The 95% interval: sacreBLEU's percentile indices (``n // 40`` from each end of the sorted scores)."""
        ordered = np.sort(self.resampled)
        n = len(ordered)
        mean, _ = estimate_ci(self.resampled)
        r = self.resampler
        return Interval(float(self.score), float(ordered[n // 40]), float(ordered[n - n // 40 - 1]), float(mean),
                        r.n_samples, r.seed, r.n_segments)


def sample_system(metric: Metric, hyps: Sequence[str], refs: Sequence[str], resampler: Resampler) -> SystemSample:
    """Score ``hyps`` against ``refs`` (corpus score and every resample of ``resampler``)."""
    stats = segment_stats(metric, hyps, refs)
    score = metric._compute_score_from_stats(stats.sum(axis=0)).score
    return SystemSample(float(score), resampler.scores(metric, stats), resampler)


def paired_p_value(system: SystemSample, baseline: SystemSample) -> float:
    """sacreBLEU's paired-bootstrap p-value (ties count as extreme: see the module doc); both on one resampler."""
    if system.resampler is not baseline.resampler:
        raise InputError("the systems were resampled separately: an unpaired comparison",
                         fix="score both with the same Resampler (same segments)")
    observed = abs(system.score - baseline.score)
    diffs = np.abs(system.resampled - baseline.resampled)
    shifted = diffs - diffs.mean()
    extreme = int(np.sum(shifted >= observed - _TIE))
    return min(1.0, (extreme + 1) / (len(diffs) + 1))


def bootstrap_ci(hyps: Sequence[str], refs: Sequence[str], metric: str = "bleu", tokenize: str = "13a",
                 n_samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED) -> Interval:
    """Corpus BLEU (cased, ``tokenize``) or chrF of ``hyps`` with its bootstrap 95% confidence interval."""
    m = make_metric(metric, tokenize)
    return sample_system(m, hyps, refs, Resampler(len(refs), n_samples, seed)).interval()


def paired_bootstrap(hyps: Sequence[str], baseline_hyps: Sequence[str], refs: Sequence[str], metric: str = "bleu",
                     tokenize: str = "13a", n_samples: int = DEFAULT_SAMPLES,
                     seed: int = DEFAULT_SEED) -> PairedResult:
    """Paired bootstrap test of ``hyps`` against ``baseline_hyps``; segment i of each translates ``refs[i]``."""
    if len(hyps) != len(baseline_hyps):
        raise InputError(f"{len(hyps)} system hypotheses but {len(baseline_hyps)} baseline hypotheses",
                         fix="a paired test needs both systems on the same segments")
    m = make_metric(metric, tokenize)
    resampler = Resampler(len(refs), n_samples, seed)
    system, baseline = (sample_system(m, h, refs, resampler) for h in (hyps, baseline_hyps))
    return PairedResult(system.interval(), baseline.interval(), paired_p_value(system, baseline))


def fmt_interval(interval: Interval, digits: int = 2, bound_digits: int = 1) -> str:
    """``12.34 [10.9, 13.8]``: the score and its 95% interval."""
    def num(x: float, d: int) -> str:
        return f"{round(x, d) + 0.0:.{d}f}"  # + 0.0: no "-0.0"
    return f"{num(interval.score, digits)} [{num(interval.low, bound_digits)}, {num(interval.high, bound_digits)}]"


def fmt_p(p: float) -> str:
    """``0.003†`` (p < 0.05) or ``0.412``."""
    if math.isnan(p):
        raise ValueError("p-value is NaN")
    return f"{p:.3f}" + ("†" if p < ALPHA else "")


def to_json(result: PairedResult) -> Dict[str, object]:
    """The test as a JSON-able dict (scores, intervals, p-value, resamples, seed)."""
    def iv(i: Interval) -> Dict[str, float]:
        return {"score": round(i.score, 4), "low": round(i.low, 4), "high": round(i.high, 4),
                "mean": round(i.mean, 4)}
    return {"system": iv(result.system), "baseline": iv(result.baseline), "p_value": round(result.p_value, 6),
            "n_samples": result.system.n_samples, "seed": result.system.seed,
            "n_segments": result.system.n_segments}


def paired_test_files(hyp: PathLike, baseline_hyp: PathLike, ref: PathLike, tokenize: str = "13a",
               n_samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED,
               allow_missing: bool = False) -> Dict[str, object]:
    """The paired bootstrap test of two decodes (Kaldi ``utt text`` files, paired by utterance id) for BLEU and chrF.

    Returns ``{"bleu": to_json(...), "chrf": to_json(...), "hyp", "baseline_hyp", "ref", "tokenize"}``.
    """
    utts, hyps, refs, _ = match(hyp, ref, allow_missing)
    _, base_hyps, _, _ = match(baseline_hyp, ref, allow_missing)  # same reference: same utterance order
    out: Dict[str, object] = {"hyp": str(hyp), "baseline_hyp": str(baseline_hyp), "ref": str(ref),
                              "tokenize": tokenize, "num_utts": len(utts)}
    for metric in METRICS:
        out[metric] = to_json(paired_bootstrap(hyps, base_hyps, refs, metric, tokenize, n_samples, seed))
    return out


def format_paired(result: Dict[str, object]) -> str:
    """Human-readable lines of :func:`paired_test_files`' result."""
    lines = [f"system: {result['hyp']}", f"baseline: {result['baseline_hyp']}", f"ref: {result['ref']} "
             f"({result['num_utts']} segments)"]
    for metric, name in (("bleu", "BLEU"), ("chrf", "chrF2")):
        r = result[metric]
        assert isinstance(r, dict)
        s, b = r["system"], r["baseline"]
        lines.append(f"{name}: system {s['score']:.2f} [{s['low']:.2f}, {s['high']:.2f}], baseline {b['score']:.2f} "
                     f"[{b['low']:.2f}, {b['high']:.2f}], paired bootstrap p = {fmt_p(r['p_value'])} "
                     f"(bs:{r['n_samples']}|seed:{r['seed']})")
    return "\n".join(lines) + "\n"
