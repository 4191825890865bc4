"""The comparison document (salign/analysis/compare.py) on hand-made result.json / gap.json / train.log files: rows,
cells, missing values, errors; intervals, paired p-values and seeds on synthetic decodes scored by salign.bin.score."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest

from salign.analysis import compare
from salign.scoring.score import score_decode
from salign.scoring.significance import fmt_p, make_metric, paired_bootstrap, paired_p_value, sample_system
from salign.utils.io import InputError
from tests.scoring.test_significance import corpus

SIG = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
SIG_LC = "nrefs:1|case:lc|eff:no|tok:13a|smooth:exp|version:2.6.0"


def result(st_exp: Path, task: str, test_set: str, value: float) -> None:
    r: Dict[str, object] = {"task": task, "set": test_set, "model": st_exp.name[3:], "num_utts": 3, "num_missing": 0}
    if task == "asr":
        r.update(wer=value, cer=value / 2)
    else:
        r.update(bleu=value, bleu_signature=SIG, bleu_lc=value + 1, bleu_lc_signature=SIG_LC)
    path = st_exp / f"decode_{task}_{test_set}" / "score" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(r))


def gap(st_exp: Path, disc: Optional[Dict[str, float]]) -> None:
    g = {"n_utts": 8, "layers": ["0", "1", "top"],
         "discriminator": {name: {"acc": a, "acc_speech": a, "acc_text": a} for name, a in disc.items()} if disc
         else None,
         "retrieval": {"0": {"r1": 0.1, "r5": 0.5}, "1": {"r1": 0.2, "r5": 0.6}, "top": {"r1": 0.375, "r5": 0.75}},
         "cosine": {"top": {"paired": 0.9, "unpaired": 0.8, "gap": 0.1234}},
         "cka": {"top": 0.4567}, "mmd": {"top": {"mmd2": 0.01, "sigma": 1.0}}}
    (st_exp / "gap").mkdir(parents=True)
    (st_exp / "gap" / "gap.json").write_text(json.dumps(g))


EPOCH = ("[vm] 2026-01-01 10:{m:02d}:00,000 (trainer:394) INFO: {e}epoch results: [train] loss=1.0, time={t}, "
         "total_count=5, [valid] loss=1.0, acc=0.5, time=2 seconds, total_count=1\n")


def train_log(st_exp: Path, params: str = "1.23 M", footer: bool = True, first_epoch: int = 1) -> None:
    text = "# python -m salign.bin.st_train ...\n# Started at Thu Jan  1 10:00:00 UTC 2026\n"
    text += f"Model summary:\n    Class Name: X\n    Total Number of model parameters: {params}\n"
    text += "[vm] 2026-01-01 10:00:05,000 (st:1) INFO: start\n"
    for i, e in enumerate(range(first_epoch, first_epoch + 2)):
        text += EPOCH.format(m=i + 1, e=e, t="1 minute and 3.5 seconds")
    if footer:
        text += ("# Accounting: time=300 threads=1\n"
                 "# Ended (code 0) at Thu Jan  1 10:05:00 UTC 2026, elapsed time 300 seconds\n")
    st_exp.mkdir(parents=True, exist_ok=True)
    (st_exp / "train.log").write_text(text)


def make_exp(tmp_path: Path) -> Path:
    """Three finished methods (one stock, resumed, without gap analysis) and a shared MT pre-training."""
    exp = tmp_path / "exp"
    for tag, bleu in (("baseline", 10.0), ("adversarial", 12.5)):
        d = exp / f"st_{tag}"
        result(d, "st", "tst-COMMON", bleu)
        result(d, "st", "train_subset", bleu * 3)
        result(d, "mt", "tst-COMMON", bleu * 2)
        result(d, "asr", "tst-COMMON", 40.0 - bleu)
        gap(d, {"align": 0.61} if tag == "adversarial" else None)
        train_log(d)
    d = exp / "st_stock_espnet"
    result(d, "st", "tst-COMMON", 7.25)
    result(d, "st", "train_subset", 20.0)
    train_log(d, params="606.26 K", footer=False, first_epoch=3)
    train_log(exp / "mt_train_mt_compare", footer=True)
    return exp


@pytest.fixture
def exp(tmp_path) -> Path:
    return make_exp(tmp_path)


def table_rows(text: str) -> Dict[str, list]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells
    return rows


def table(text: str) -> Dict[str, Dict[str, str]]:
    """``{row: {column: cell}}`` of the comparison table."""
    head = next(line for line in text.splitlines() if line.startswith("| Method |"))
    names = [c.strip() for c in head.strip("|").split("|")]
    return {row: dict(zip(names, cells)) for row, cells in table_rows(text).items()}


def test_table_has_one_row_per_method_with_the_right_cells(exp, tmp_path):
    out = tmp_path / "sub" / "COMPARE.md"
    text = compare.write_comparison(out, exp, ["baseline", "adversarial", "stock_espnet"], "./compare.sh --debug true",
                                    "Alignment methods side by side", ["Learning size: ./compare.sh --corpus_opts ..."],
                                    mt_exp=exp / "mt_train_mt_compare")
    assert out.read_text() == text and [p.name for p in out.parent.iterdir()] == ["COMPARE.md"]
    assert text.startswith("# Alignment methods side by side\n\nLearning size: ./compare.sh --corpus_opts ...\n")
    assert ("| Method | What | ST BLEU tst-COMMON | p tst-COMMON | ST BLEU train_subset | MT BLEU tst-COMMON "
            "| ASR WER tst-COMMON | disc acc | R@1 top | cos gap | CKA top | train time | params |") in text
    rows = table_rows(text)
    assert list(rows) == ["baseline", "adversarial", "stock_espnet"]
    # these result.json name no hypothesis files: plain scores, no p-value (and a note saying why)
    #            ST     p   ST-train  MT     WER    disc  R@1   cos     CKA   time    params
    assert rows["adversarial"][2:] == ["12.50", "–", "37.50", "25.00", "27.50", "0.61", "0.38", "0.123", "0.46",
                                       "5.0 min, 1 thr", "1.23 M"]
    assert rows["baseline"][3] == "base" and rows["baseline"][7] == "–"  # the baseline itself; no modal network
    stock = rows["stock_espnet"]
    assert stock[2:5] == ["7.25", "–", "20.00"] and stock[5:11] == ["–"] * 6
    assert stock[11] == "≈2.2 min"  # resumed log: 2 × (63.5 s train + 2 s valid)
    assert stock[12] == "606 K"
    assert "`exp/st_adversarial/decode_st_tst-COMMON`: no interval, hypotheses file not found" in text
    assert f"`{SIG}`" in text and f"`{SIG_LC}`" in text
    assert "```bash\n./compare.sh --debug true\n```" in text
    assert "Learning size: ./compare.sh --corpus_opts ..." in text
    assert "Shared MT pre-training" in text and "5.0 min" in text.split("Shared MT pre-training")[1]


def test_errors_name_the_file_and_the_fix(exp, tmp_path):
    with pytest.raises(InputError, match="no experiment dir for nope"):
        compare.compare_table(exp, ["baseline", "nope"], "x", "t")
    bad = exp / "st_baseline" / "decode_mt_tst-COMMON" / "score" / "result.json"
    bad.write_text("{broken")
    with pytest.raises(InputError, match="not valid JSON") as e:
        compare.compare_table(exp, ["baseline"], "x", "t")
    assert str(bad) in str(e.value)
    bad.write_text(json.dumps({"task": "st", "bleu": 1.0}))
    with pytest.raises(InputError, match="expected 'mt'"):
        compare.compare_table(exp, ["baseline"], "x", "t")
    bad.unlink()
    (exp / "st_adversarial" / "gap" / "gap.json").write_text(json.dumps({"discriminator": None}))
    with pytest.raises(InputError, match="not a gap.json"):
        compare.compare_table(exp, ["adversarial"], "x", "t")


def test_time_and_number_cells():
    assert compare.fmt_time(None) == "–" and compare.fmt_time(30) == "30 s" and compare.fmt_time(9000) == "2.50 h"
    assert compare.fmt_time(150, False, 2) == "≈2.5 min, 2 thr"
    assert compare.fmt_train_time(None) == "–"
    assert compare.fmt_params(606260.0) == "606 K" and compare.fmt_params(27.31e6) == "27.31 M"
    assert compare.fmt(-0.001) == "0.00" and compare.fmt(None) == "–" and compare.fmt(0.12345, 3) == "0.123"


# --- intervals and paired tests, from real hypothesis/reference files scored by salign.scoring.score ---

N_BOOT = 200  # resamples in these tests (the table's default: 1000)
SETS = ("tst-COMMON", "tst-voices")  # any test set names: the second stands for a held-out-voices set
CELL = re.compile(r"^(\d+\.\d\d) \[(\d+\.\d), (\d+\.\d)\]$")


def write_text(path: Path, utts: List[str], texts: List[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{u} {t}\n" for u, t in zip(utts, texts)), encoding="utf-8")
    return path


def make_sig_exp(root: Path) -> Dict[str, Dict[str, List[str]]]:
    """A recipe dir ``root`` (run from it: result.json paths are relative) with ``exp/st_<row>`` decodes of two test
    sets and the training subset, scored by salign.scoring.score; returns ``{set: {"refs"|row: texts}}``."""
    data: Dict[str, Dict[str, List[str]]] = {}
    for test_set, n, seed in ((SETS[0], 60, 1), (SETS[1], 40, 2), ("train_subset", 20, 3)):
        refs, base, better = corpus(n, seed=seed, gain=0.12)
        bad = [" ".join(h.split()[: max(1, len(h.split()) // 3)]) for h in base]
        data[test_set] = {"refs": refs, "baseline": base, "better": better, "same": list(base), "oracle": refs,
                          "stock_espnet": bad, "llm_baseline": base, "llm_ot": better, "baseline_seed2": better}
    scored: Dict[Tuple[str, str, Tuple[str, ...]], Dict] = {}  # equal decodes are scored once (TER is slow)
    for test_set, texts in data.items():
        utts = [f"utt{i:04d}" for i in range(len(texts["refs"]))]
        ref = write_text(root / "dump" / test_set / "text.es", utts, texts["refs"])
        for row, hyps in texts.items():
            if row == "refs":
                continue
            tasks = ("st", "mt") if test_set != "train_subset" else ("st",)
            for task in tasks:
                decode = Path("exp") / f"st_{row}" / f"decode_{task}_{test_set}"
                hyps = hyps if task == "st" else texts["refs"]
                hyp = write_text(root / decode / "1best_recog" / "text", utts, hyps)
                key = (task, test_set, tuple(hyps))
                if key not in scored:
                    score_decode(task, hyp.relative_to(root), ref.relative_to(root), root / decode / "score",
                                 test_set=test_set, model=row, tgt_lang="es")
                    scored[key] = json.loads((root / decode / "score" / "result.json").read_text())
                else:
                    (root / decode / "score").mkdir()
                    (root / decode / "score" / "result.json").write_text(
                        json.dumps(dict(scored[key], model=row, hyp=str(hyp.relative_to(root)))))
    (root / "exp" / "st_baseline" / "config.yaml").write_text("seed: 0\n")
    return data


@pytest.fixture(scope="module")
def sig_recipe(tmp_path_factory) -> Tuple[Path, Dict[str, Dict[str, List[str]]]]:
    """The scored decodes, built once (each test gets its own copy: :func:`sig_exp`)."""
    root = tmp_path_factory.mktemp("sig") / "recipe"
    root.mkdir()
    cwd = Path.cwd()
    os.chdir(root)
    try:
        data = make_sig_exp(root)
    finally:
        os.chdir(cwd)
    return root, data


@pytest.fixture
def sig_exp(sig_recipe, tmp_path, monkeypatch) -> Tuple[Path, Dict[str, Dict[str, List[str]]]]:
    root = shutil.copytree(sig_recipe[0], tmp_path / "recipe", symlinks=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths of result.json: found from the experiment dir's parent
    return root / "exp", sig_recipe[1]


ROWS = ["baseline", "better", "same", "oracle", "stock_espnet", "llm_baseline", "llm_ot"]


def test_table_shows_intervals_and_paired_p_values(sig_exp):
    exp, data = sig_exp
    text = compare.compare_table(exp, ROWS, "x", "t", test_sets=list(SETS), n_bootstrap=N_BOOT)
    assert ("| Method | What | ST BLEU tst-COMMON | p tst-COMMON | ST BLEU tst-voices | p tst-voices "
            "| ST BLEU train_subset | ST BLEU tst-COMMON seeds | MT BLEU tst-COMMON | MT BLEU tst-voices "
            "| ASR WER tst-COMMON | ASR WER tst-voices | disc acc |") in text
    t = table(text)
    assert list(t) == ROWS
    for row, cells in t.items():
        for col in ("ST BLEU tst-COMMON", "ST BLEU tst-voices", "ST BLEU train_subset", "MT BLEU tst-COMMON",
                    "MT BLEU tst-voices"):
            m = CELL.match(cells[col])
            assert m, (row, col, cells[col])
            score, low, high = map(float, m.groups())
            assert low - 0.05 <= score <= high + 0.05, (row, col, cells[col])  # bounds have one decimal
        assert cells["ASR WER tst-COMMON"] == "–"
    for test_set in SETS:
        p = {row: t[row][f"p {test_set}"] for row in ROWS}
        assert p["baseline"] == p["llm_baseline"] == "base"
        assert p["same"] == "1.000"  # identical to the baseline: not significant
        assert p["oracle"].endswith("†") and p["stock_espnet"].endswith("†")  # vs baseline
        refs, base, better = data[test_set]["refs"], data[test_set]["baseline"], data[test_set]["better"]
        r = paired_bootstrap(better, base, refs, n_samples=N_BOOT)
        assert p["better"] == p["llm_ot"] == fmt_p(r.p_value) and r.significant
        # the gain is significant although the two intervals overlap: the test is paired
        b_low = float(CELL.match(t["better"][f"ST BLEU {test_set}"]).group(2))
        base_high = float(CELL.match(t["baseline"][f"ST BLEU {test_set}"]).group(3))
        assert b_low < base_high
    assert t["baseline"]["ST BLEU tst-COMMON seeds"].endswith("(n=2)")
    assert t["better"]["ST BLEU tst-COMMON seeds"] == "–"
    seeds = text.split("each seed's score:")[1]
    assert "- `baseline`: tst-COMMON: " in seeds and "`st_baseline` (seed 0)" in seeds
    assert "`st_baseline_seed2`" in seeds
    assert f"over {N_BOOT} resamples" in text and "Not computed" not in text
    assert f"`bs:{N_BOOT}|seed:12345`" in text
    assert text == compare.compare_table(exp, ROWS, "x", "t", test_sets=list(SETS), n_bootstrap=N_BOOT)  # seeded


def test_pairing_is_by_utterance_id_not_by_line(sig_exp):
    """Reordering a decode's lines changes nothing (segments are paired by id); giving each hypothesis another
    segment's id (an unpaired comparison in disguise) loses the significance."""
    exp, data = sig_exp
    rows = ["baseline", "better"]
    before = compare.compare_table(exp, rows, "x", "t", test_sets=SETS[0], n_bootstrap=N_BOOT)
    hyp = exp / "st_better" / "decode_st_tst-COMMON" / "1best_recog" / "text"
    lines = hyp.read_text().splitlines(keepends=True)
    hyp.write_text("".join(lines[::-1]))
    assert compare.compare_table(exp, rows, "x", "t", test_sets=SETS[0], n_bootstrap=N_BOOT) == before
    assert table(before)["better"]["p tst-COMMON"].endswith("†")
    sig = compare.Significance(exp, N_BOOT)
    path = compare.result_path(exp / "st_better", "st", SETS[0])
    better = sig.scored(compare.read_score(exp / "st_better", "st", SETS[0]), path)
    base = sig.scored(compare.read_score(exp / "st_baseline", "st", SETS[0]),
                      compare.result_path(exp / "st_baseline", "st", SETS[0]))
    perm = np.random.default_rng(3).permutation(len(base.utts))
    shuffled = compare.Scored(base.utts, [base.hyps[i] for i in perm], [base.refs[i] for i in perm], base.tokenize,
                              sample_system(make_metric(), [base.hyps[i] for i in perm],
                                            [base.refs[i] for i in perm], base.sample.resampler))
    assert sig.p_value(better, shuffled, "x") is None  # other references per id: refused
    unpaired = paired_p_value(better.sample, shuffled.sample)
    assert unpaired > 0.05


def test_missing_files_stale_decodes_no_bootstrap_and_seed_rows(sig_exp):
    exp, _ = sig_exp
    (exp / "st_same" / "decode_st_tst-voices" / "1best_recog" / "text").unlink()
    text = compare.compare_table(exp, ["baseline", "same", "baseline_seed2"], "x", "t", test_sets=list(SETS),
                                 n_bootstrap=N_BOOT)
    t = table(text)
    assert re.fullmatch(r"\d+\.\d\d", t["same"]["ST BLEU tst-voices"]) and t["same"]["p tst-voices"] == "–"
    assert ("- `exp/st_same/decode_st_tst-voices`: no interval, hypotheses file not found "
            "(`exp/st_same/decode_st_tst-voices/1best_recog/text`)") in text
    assert t["same"]["p tst-COMMON"] == "1.000"
    assert t["baseline_seed2"]["p tst-COMMON"].endswith("†")  # a seed row is tested against its method's baseline
    plain = table(compare.compare_table(exp, ["baseline", "same"], "x", "t", test_sets=list(SETS), n_bootstrap=0))
    assert "p tst-COMMON" not in plain["same"] and re.fullmatch(r"\d+\.\d\d", plain["same"]["ST BLEU tst-COMMON"])
    hyp = exp / "st_same" / "decode_st_tst-COMMON" / "1best_recog" / "text"
    hyp.write_text(hyp.read_text().replace(" w", " q"))
    with pytest.raises(InputError, match="the decode changed after scoring"):
        compare.compare_table(exp, ["same"], "x", "t", test_sets=list(SETS), n_bootstrap=N_BOOT)
    with pytest.raises(InputError, match="n_bootstrap -1"):
        compare.compare_table(exp, ["baseline"], "x", "t", n_bootstrap=-1)
    assert compare.baseline_of("llm_ot_seed3") == "llm_baseline" and compare.baseline_of("ot_seed2") == "baseline"
    assert compare.baseline_of("stock_espnet") == "baseline"


def test_asr_pretraining_line_says_where_early_stopping_stopped(tmp_path):
    """The shared ASR pre-training's line: epochs run, early stopping or not, the best dev loss and its epoch."""
    line = ("[vm] 2026-01-01 10:0{e}:00,000 (trainer:394) INFO: {e}epoch results: [train] loss={tr}, time=1 minute "
            "and 0.5 seconds, [valid] loss={v}, time=2.0 seconds\n")
    asr = tmp_path / "asr"
    asr.mkdir()
    losses = [90.0, 60.5, 61.0, 62.0]
    text = "".join(line.format(e=e, tr=100 - e, v=v) for e, v in enumerate(losses, 1))
    (asr / "train.log").write_text(text)
    out = compare.asr_pretraining_line(asr)
    assert "4 epochs, ran to its max_epoch" in out and "best dev CTC loss 60.50 at epoch 2" in out
    (asr / "train.log").write_text(text + "[vm] INFO: [Early stopping] valid.loss has not been improved 2 epochs "
                                          "continuously. The training was stopped at 4epoch\n")
    assert "stopped by early stopping on the dev CTC loss" in compare.asr_pretraining_line(asr)
