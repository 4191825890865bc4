"""The comparison document (salign/analysis/compare.py) on hand-made result.json / gap.json / train.log files: rows,
cells, missing values, errors."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import pytest

from salign.analysis import compare
from salign.utils.io import InputError

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


def test_table_has_one_row_per_method_with_the_right_cells(exp, tmp_path):
    out = tmp_path / "sub" / "COMPARE.md"
    text = compare.write_comparison(out, exp, ["baseline", "adversarial", "stock_espnet"], "./compare.sh --debug true",
                                    "Alignment methods side by side", ["Learning size: ./compare.sh --corpus_opts ..."],
                                    mt_exp=exp / "mt_train_mt_compare")
    assert out.read_text() == text and [p.name for p in out.parent.iterdir()] == ["COMPARE.md"]
    assert text.startswith("# Alignment methods side by side\n\nLearning size: ./compare.sh --corpus_opts ...\n")
    assert ("| Method | What | ST BLEU tst-COMMON | ST BLEU train_subset | MT BLEU tst-COMMON | ASR WER tst-COMMON "
            "| disc acc | R@1 top | cos gap | CKA top | train time | params |") in text
    rows = table_rows(text)
    assert list(rows) == ["baseline", "adversarial", "stock_espnet"]
    #            ST    ST-train  MT     WER    disc  R@1   cos     CKA   time    params
    assert rows["adversarial"][2:] == ["12.50", "37.50", "25.00", "27.50", "0.61", "0.38", "0.123", "0.46",
                                       "5.0 min, 1 thr", "1.23 M"]
    assert rows["baseline"][6] == "–"  # no modal network
    stock = rows["stock_espnet"]
    assert stock[2:4] == ["7.25", "20.00"] and stock[4:10] == ["–"] * 6
    assert stock[10] == "≈2.2 min"  # resumed log: 2 × (63.5 s train + 2 s valid)
    assert stock[11] == "606 K"
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
