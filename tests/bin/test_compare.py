"""salign.bin.compare on hand-made result.json / gap.json / train.log files: rows, cells, missing values, errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest

from salign.bin import compare
from salign.utils.io import InputError
from tests.conftest import REPO

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


@pytest.fixture
def exp(tmp_path) -> Path:
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


def table_rows(text: str) -> Dict[str, list]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells
    return rows


def test_table_has_one_row_per_method_with_the_right_cells(exp, tmp_path, capsys):
    out = tmp_path / "COMPARE.md"
    compare.main(["--exp", str(exp), "--out", str(out), "--methods", "baseline adversarial, stock_espnet",
                  "--command", "./compare.sh --debug true", "--mt_exp", str(exp / "mt_train_mt_compare"),
                  "--note", "Learning size: ./compare.sh --corpus_opts ..."])
    text = out.read_text()
    assert capsys.readouterr().out == text
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


def test_missing_decodes_are_dashes_and_the_cli_writes_atomically(exp, tmp_path):
    (exp / "st_ot").mkdir()
    out = tmp_path / "sub" / "C.md"
    proc = subprocess.run([sys.executable, "-m", "salign.bin.compare", "--exp", str(exp), "--out", str(out),
                           "--methods", "ot", "--command", "x"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    row = table_rows(out.read_text())["ot"]
    assert row[2:] == ["–"] * 10
    assert "(no translation results yet)" in out.read_text()
    assert [p.name for p in out.parent.iterdir()] == ["C.md"]


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
    proc = subprocess.run([sys.executable, "-m", "salign.bin.compare", "--exp", str(tmp_path / "none"),
                           "--methods", "a", "--command", "x", "--out", str(tmp_path / "o.md")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "ERROR" in proc.stderr and "fix:" in proc.stderr


@pytest.mark.parametrize("text, seconds", [("3.5 seconds", 3.5), ("1 minute and 3 seconds", 63.0),
                                           ("2 hours, 1 minute and 0.5 seconds", 7260.5), ("1 day", 86400.0)])
def test_parse_timespan(text, seconds):
    assert compare.parse_timespan(text) == seconds


def test_train_time_falls_back_to_timestamps_without_a_footer(tmp_path):
    d = tmp_path / "st_x"
    train_log(d, footer=False)
    assert compare.train_time(d / "train.log") == (115.0, True)  # 10:00:05 -> 10:02:00
    assert compare.train_time(tmp_path / "none.log") == (None, False)
    assert compare.fmt_time(None) == "–" and compare.fmt_time(30) == "30 s" and compare.fmt_time(9000) == "2.50 h"
    assert compare.fmt_time(150, False, 2) == "≈2.5 min, 2 thr"


STOCK_CONFIGS = sorted((REPO / "egs" / "mini_mustc" / "conf" / "compare").rglob("train_st_stock_espnet.yaml"))


@pytest.mark.parametrize("path", STOCK_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_stock_espnet_config_builds_espnets_own_st_model(path, tiny_data):
    """The stock row's configs are ESPnet STTask configs (salign's task rejects them): build them with ESPnet's."""
    from espnet2.st.espnet_model import ESPnetSTModel
    from espnet2.tasks.st import STTask

    tokens = str(tiny_data / "tokens.txt")
    args = STTask.get_parser().parse_args(["--config", str(path), "--token_list", tokens, "--src_token_list", tokens,
                                           "--token_type", "word", "--src_token_type", "word", "--input_size", "80"])
    model = STTask.build_model(args)
    assert type(model) is ESPnetSTModel and model.asr_weight == 0.3 and model.mt_weight == 0.0
    assert model.extra_asr_decoder is not None and model.ctc is not None


def test_compare_configs_share_one_budget():
    """Every salign row of a comparison has the same model section, batch, optimiser, schedule and epochs."""
    import yaml

    for cdir in (REPO / "egs" / "mini_mustc" / "conf" / "compare", REPO / "egs" / "mini_mustc" / "conf" / "compare"
                 / "debug"):
        confs = {p.stem: yaml.safe_load(p.read_text()) for p in cdir.glob("train_st_*.yaml")}
        assert set(confs) == {f"train_st_{m}" for m in ("baseline", "contrastive", "adversarial", "ot",
                                                         "stock_espnet")}
        mt = yaml.safe_load((cdir / "train_mt_compare.yaml").read_text())
        keys = ("preencoder", "preencoder_conf", "encoder", "encoder_conf", "text_encoder", "text_encoder_conf",
                "decoder", "decoder_conf")
        budget = ("optim", "optim_conf", "scheduler", "scheduler_conf", "max_epoch", "batch_type", "batch_size",
                  "keep_nbest_models")
        base = confs["train_st_baseline"]
        assert base["align"] is None
        for name, conf in confs.items():
            if name == "train_st_stock_espnet":  # same CPU time: its (costlier) epochs may be fewer
                assert conf["max_epoch"] <= base["max_epoch"], name
                assert all(conf.get(k) == base.get(k) for k in budget if k != "max_epoch"), name
                continue
            assert all(conf.get(k) == base.get(k) for k in budget), name
            assert all(conf.get(k) == base.get(k) for k in keys + ("model_conf",)), name
        stock = confs["train_st_stock_espnet"]  # same frame rate and width; depth = A-enc + T-enc
        assert {k: v for k, v in stock["encoder_conf"].items() if k not in ("num_blocks", "input_layer")} == \
            {k: v for k, v in base["encoder_conf"].items() if k not in ("num_blocks", "input_layer")}
        sub = {"conv1d2": 2, "conv2d": 4, "conv2d2": 2, "conv2d6": 6, "conv2d8": 8, "linear": 1}
        stack = (base.get("preencoder_conf") or {}).get("stack", 1) if base.get("preencoder") == "stack" else 1
        assert sub[stock["encoder_conf"]["input_layer"]] == stack * sub[base["encoder_conf"]["input_layer"]]
        assert stock["encoder_conf"]["num_blocks"] == (base["encoder_conf"]["num_blocks"]
                                                       + base["text_encoder_conf"]["num_blocks"])
        assert all(mt.get(k) == base.get(k) for k in keys)  # the MT checkpoint initialises every salign row
