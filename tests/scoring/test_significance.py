"""Bootstrap intervals and the paired bootstrap test (salign/scoring/significance.py) on small synthetic systems:
intervals contain the score and narrow with more segments, identical systems are not significant, the references
beat a bad baseline, the test is paired (an unpaired one misses a small consistent gain), numbers equal sacreBLEU's."""
from __future__ import annotations

import json
from typing import List, Tuple

import numpy as np
import pytest
import sacrebleu
from sacrebleu.metrics import BLEU
from sacrebleu.significance import Result, _paired_bs_test

from salign.bin import score
from salign.scoring import significance as sig
from salign.utils.io import InputError

N = 200  # resamples in these tests (1000 in the table): keeps the module well under a second
VOCAB = [f"w{i}" for i in range(400)]


def corpus(n: int, seed: int = 0, gain: float = 0.0) -> Tuple[List[str], List[str], List[str]]:
    """``(refs, base, better)``: n references of 5-30 words; ``base`` keeps each word with a per-segment
    probability (segments from hopeless to perfect: high variance between segments); ``better`` is ``base`` with a
    fraction ``gain`` of its wrong words corrected (a small gain on every segment)."""
    rng = np.random.default_rng(seed)
    refs, base, better = [], [], []
    for _ in range(n):
        words = list(rng.choice(VOCAB, int(rng.integers(5, 31))))
        keep = rng.random()
        hyp = [w if rng.random() < keep else "xx" for w in words]
        fix = [w if (h != "xx" or rng.random() < gain) else "xx" for w, h in zip(words, hyp)]
        refs.append(" ".join(words))
        base.append(" ".join(hyp))
        better.append(" ".join(fix))
    return refs, base, better


def test_interval_contains_the_score_and_narrows_with_more_segments():
    widths = []
    for n in (20, 320):
        refs, base, _ = corpus(n)
        iv = sig.bootstrap_ci(base, refs, n_samples=N)
        assert iv.score == pytest.approx(sacrebleu.corpus_bleu(base, [refs]).score, abs=1e-9)
        assert iv.contains(iv.score) and iv.low < iv.score < iv.high
        assert iv.low <= iv.mean <= iv.high and iv.half_width == pytest.approx((iv.high - iv.low) / 2)
        assert (iv.n_samples, iv.seed, iv.n_segments) == (N, sig.DEFAULT_SEED, n)
        widths.append(iv.high - iv.low)
    assert widths[1] < 0.5 * widths[0]  # 16x the segments: about a quarter of the width


def test_chrf_interval_and_determinism():
    refs, base, _ = corpus(40)
    iv = sig.bootstrap_ci(base, refs, metric="chrf", n_samples=N)
    assert iv.score == pytest.approx(sacrebleu.corpus_chrf(base, [refs]).score, abs=1e-9) and iv.contains(iv.score)
    assert sig.bootstrap_ci(base, refs, n_samples=N, seed=7) == sig.bootstrap_ci(base, refs, n_samples=N, seed=7)
    assert sig.bootstrap_ci(base, refs, n_samples=N, seed=7) != sig.bootstrap_ci(base, refs, n_samples=N, seed=8)
    with pytest.raises(InputError, match="unknown metric 'ter'"):
        sig.bootstrap_ci(base, refs, metric="ter")
    with pytest.raises(InputError, match="3 hypotheses for 40 references"):
        sig.bootstrap_ci(base[:3], refs)


def test_identical_systems_are_not_significant():
    refs, base, _ = corpus(40)
    r = sig.paired_bootstrap(base, list(base), refs, n_samples=N)
    assert r.p_value == 1.0 and not r.significant and r.difference == 0.0
    assert r.system == r.baseline
    # two different systems that both score BLEU 0 on every resample: no difference to test either (sacreBLEU's own
    # count gives 1/(N+1) here)
    empty = sig.paired_bootstrap([""] * 40, ["zz"] * 40, refs, n_samples=N)
    assert empty.system.score == empty.baseline.score == 0.0 and empty.p_value == 1.0


def test_the_references_beat_a_bad_baseline():
    refs, base, _ = corpus(30)
    bad = [" ".join(h.split()[: max(1, len(h.split()) // 3)]) for h in base]
    r = sig.paired_bootstrap(refs, bad, refs, n_samples=N)
    assert r.system.score == pytest.approx(100.0) and r.baseline.score < 20
    assert r.p_value < 0.05 and r.significant and r.p_value == pytest.approx(1 / (N + 1))
    assert sig.fmt_p(r.p_value) == "0.005†" and sig.fmt_p(0.5) == "0.500"
    # the other way round: the same p-value (two-sided)
    assert sig.paired_bootstrap(bad, refs, refs, n_samples=N).p_value == r.p_value


def test_the_test_is_paired():
    """A small gain on every segment, under large differences between segments: the paired test finds it, resampling
    each system on its own (unpaired) does not; breaking the pairing by shuffling one system's segments is refused
    as input (different resamplers) or loses the significance."""
    refs, base, better = corpus(60, seed=1, gain=0.12)
    r = sig.paired_bootstrap(better, base, refs, n_samples=N)
    assert r.difference > 0 and r.significant, r
    assert r.system.low < r.baseline.high  # the two intervals overlap: comparing them would not show it
    metric = sig.make_metric()
    one, other = sig.Resampler(len(refs), N, seed=1), sig.Resampler(len(refs), N, seed=2)
    unpaired_sys = sig.sample_system(metric, better, refs, one)
    unpaired_base = sig.sample_system(metric, base, refs, other)
    with pytest.raises(InputError, match="unpaired"):
        sig.paired_p_value(unpaired_sys, unpaired_base)
    diffs = np.abs(unpaired_sys.resampled - unpaired_base.resampled)
    unpaired_p = (np.sum(diffs - diffs.mean() >= abs(r.difference)) + 1) / (N + 1)
    assert unpaired_p > 0.1, unpaired_p
    # shuffling which reference each baseline segment is paired with, on the same resamples: no longer significant
    perm = np.random.default_rng(3).permutation(len(refs))
    shuffled = sig.sample_system(metric, [base[i] for i in perm], [refs[i] for i in perm], one)
    assert sig.paired_p_value(sig.sample_system(metric, better, refs, one), shuffled) > 0.1


def test_p_value_and_interval_equal_sacrebleus_paired_bootstrap():
    refs, base, better = corpus(50, seed=4, gain=0.05)
    ours = sig.paired_bootstrap(better, base, refs, n_samples=N, seed=99)
    metric = BLEU()
    bl_stats = metric._extract_corpus_statistics(base, [refs])
    _, out = _paired_bs_test({"BLEU": (bl_stats, Result(metric._aggregate_and_compute(bl_stats).score))}, "sys",
                             better, [refs], {"BLEU": BLEU()}, N, -1, 99)
    theirs = out["BLEU"]
    assert 0.01 < theirs.p_value < 0.99  # a case without ties
    assert ours.p_value == pytest.approx(theirs.p_value) and ours.system.score == pytest.approx(theirs.score)
    assert ours.system.mean == pytest.approx(theirs.mean, abs=1e-3)  # sacreBLEU sums in float32
    assert ours.system.half_width == pytest.approx(theirs.ci, abs=1e-3)


def test_formats_and_json():
    refs, base, better = corpus(20)
    r = sig.paired_bootstrap(better, base, refs, n_samples=50, seed=5)
    iv = sig.Interval(12.345, 10.94, 13.76, 12.3, 1000, 1, 10)
    assert sig.fmt_interval(iv) == "12.35 [10.9, 13.8]"
    assert sig.fmt_interval(sig.Interval(0.0, -0.0001, 0.0, 0.0, 10, 1, 3)) == "0.00 [0.0, 0.0]"
    j = sig.to_json(r)
    assert j["n_samples"] == 50 and j["seed"] == 5 and j["n_segments"] == 20 and j["p_value"] == round(r.p_value, 6)


def test_score_cli_test_mode_pairs_by_utterance_id(tmp_path, capsys):
    refs, base, better = corpus(30, seed=1, gain=0.12)
    utts = [f"u{i:03d}" for i in range(len(refs))]

    def write(name: str, texts: List[str], order: List[int]) -> str:
        (tmp_path / name).write_text("".join(f"{utts[i]} {texts[i]}\n" for i in order))
        return str(tmp_path / name)

    forward, backward = list(range(len(refs))), list(range(len(refs)))[::-1]
    ref, hyp = write("ref", refs, forward), write("hyp", better, forward)
    args = ["--task", "st", "--hyp", hyp, "--ref", ref, "--n_bootstrap", "100", "--seed", "1"]
    for i, order in enumerate((forward, backward)):  # the baseline file in another order: the same test
        base_hyp = write(f"base{i}", base, order)
        score.main([*args, "--baseline_hyp", base_hyp, "--out", str(tmp_path / f"out{i}")])
    one, two = (json.loads((tmp_path / f"out{i}" / "significance.json").read_text()) for i in (0, 1))
    assert one["bleu"] == two["bleu"] and one["chrf"] == two["chrf"]
    r = sig.paired_bootstrap(better, base, refs, n_samples=100, seed=1)
    assert one["bleu"]["p_value"] == round(r.p_value, 6) and one["num_utts"] == 30
    assert one["bleu"]["system"]["score"] == round(sacrebleu.corpus_bleu(better, [refs]).score, 4)
    out = capsys.readouterr().out
    assert "BLEU: system" in out and "paired bootstrap p = " in out and "(bs:100|seed:1)" in out
    with pytest.raises(InputError, match="paired test is for translation"):
        score.main(["--task", "asr", "--hyp", hyp, "--ref", ref, "--baseline_hyp", hyp, "--out", str(tmp_path)])
