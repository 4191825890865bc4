"""The code-switch recipe (egs/cs_mini) in debug mode, every stage (0-19) and every ablation row, in a scratch copy:
corpus, data dirs with language labels, the driver's feature/token/shape stages (the cached states of a tiny random
Whisper: the pretrained default's stand-in for Whisper base, nothing fetched), stage lists with a decaying replay
share, no LM pre-training (a tiny random HF LM with LoRA stands in for SmolLM2), the four training stages per row
(transition loss in stage 3), decoding, scoring, the routing table and the results page; then a re-run that finds
every training up to date."""
from __future__ import annotations

import json
import math
import re
import shutil

import pytest
import yaml

from tests.conftest import REPO
from tests.integration.scratch import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROWS = ("main", "linear", "nolang", "notrans", "single")
OUTPUTS = ("corpus", "data", "dump", "exp", "RESULTS.md")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe_cs")
    dst = root / "egs" / "cs_mini"
    shutil.copytree(REPO / "egs" / "cs_mini", dst, ignore=shutil.ignore_patterns(*OUTPUTS))
    (root / "egs" / "TEMPLATE").symlink_to(REPO / "egs" / "TEMPLATE")
    proc = run(dst, ["./run.sh", "--debug", "true"], root / "run.log")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return dst, proc.stdout


def _table(page: str, heading: str) -> list:
    """The rows (lists of cells) of the Markdown table under ``## heading``."""
    part = page.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    lines = [x for x in part.splitlines() if x.startswith("|") and not x.startswith("|---")]
    return [[c.strip() for c in x.strip("|").split("|")] for x in lines[1:]]


def test_every_stage_ran(recipe):
    _, out = recipe
    for n in (0, 1, 11, 12, 13, 14, 15, 16, 17, 18, 19):
        assert f"[run.sh] stage {n}" in out, n
    for n in (3, 4, 5, 10, 12, 13):  # the shared driver's stages
        assert f"[st.sh] stage {n}" in out, n
    assert "stage 15.1 (replay share 0.5)" in out and "stage 15.2 (replay share 0.2)" in out


def test_results_page_has_numbers_for_every_row(recipe):
    dst, _ = recipe
    page = (dst / "exp" / "RESULTS.md").read_text()
    rows = _table(page, "ST (→ English) and ASR")
    assert [r[0] for r in rows] == list(ROWS)
    for r in rows:
        assert len(r) == 11 and all(re.fullmatch(r"\d+\.\d\d", c) for c in r[2:]), r
    assert "./run.sh --debug true" in page and "nrefs:1|case:mixed" in page
    times = dict((r[0], r[1]) for r in _table(page, "Wall time"))
    # the LM is pretrained: no LM pre-training
    assert "12 lm" not in times and "16 st_single" in times
    assert all(re.fullmatch(r"\**\d+\**", v) for v in times.values())
    assert not (dst / "RESULTS.md").exists()  # debug runs leave the committed page alone


def test_routing_table_and_json(recipe):
    dst, _ = recipe
    routing = json.loads((dst / "exp" / "routing.json").read_text())
    assert set(routing) == {f"st_{r}" for r in ROWS}
    assert all(v is None for v in routing["st_linear"].values())
    for row in ("main", "nolang", "notrans", "single"):
        cs = routing[f"st_{row}"]["cs_test"]
        assert cs["frames_en"] > 0 and cs["frames_es"] > 0
        assert 0 <= cs["route_en"] <= 1 and 0 <= cs["route_es"] <= 1 and 0 < cs["entropy"] <= math.log(2) + 1e-6
        assert sum(cs[f"load_e{i}"] for i in range(4)) == pytest.approx(1.0)
        assert math.isnan(routing[f"st_{row}"]["en_test"]["route_es"])  # no Spanish frame in en_test
    page = (dst / "exp" / "RESULTS.md").read_text()
    table = _table(page, "Routing")
    main_cs = next(r for r in table if r[:2] == ["main", "cs_test"])
    assert re.fullmatch(r"\d\.\d{3}", main_cs[3]) and re.fullmatch(r"\d\.\d{3}", main_cs[4])
    assert main_cs[7].count("/") == 3


def test_stages_chain_and_differ_in_one_thing(recipe):
    dst, _ = recipe
    exp = dst / "exp"
    assert not (exp / "lm").exists()
    for d in ("main_s1", "main_s2", "main_s3_1", "main_s3_2", "linear_s3_2", "nolang_s1", "notrans_s3_2"):
        assert (exp / d / "latest.pth").exists() and (exp / d / ".train.stamp").is_file(), d
    for r in ROWS:
        assert (exp / f"st_{r}" / "latest.pth").exists()
        assert (exp / f"st_{r}" / "decode_st_cs_test" / "score" / "result.json").is_file()
    assert not (exp / "notrans_s1").exists()  # shares main's stages 1-2

    def log(d):
        return (exp / d / "train.log").read_text()

    assert "exp/main_s1/latest.pth" in log("main_s2")
    # pretrained parts: the cached Whisper states (width 32, not fbank's 80) straight into the MoE projector (4 frames:
    # 80 ms, the lang_frames rate) and the HF LM with LoRA
    s1 = yaml.safe_load((exp / "main_s1" / "config.yaml").read_text())
    assert s1["encoder"] == "identity" and s1["input_size"] == 32 and s1["projector_conf"]["stack"] == 4
    assert s1["lm"] == "hf" and s1["lm_conf"]["path"] == "exp/tiny_hf_lm" and s1["lm_conf"]["finetune"] == "lora"
    assert s1["init_param"] == []
    assert "--init_param exp/main_s2/latest.pth" in log("notrans_s3_1")
    assert "--init_param exp/main_s3_1/latest.pth" in log("main_s3_2")
    assert "--init_param exp/main_s3_2/latest.pth" in log("st_main")
    assert "loss_transition=" in log("main_s3_1") and "loss_transition=" not in log("notrans_s3_1")
    assert "loss_lang=" in log("main_s1") and "loss_lang=" not in log("linear_s1")
    conf = {d: yaml.safe_load((exp / d / "config.yaml").read_text()) for d in ("main_s3_1", "notrans_s3_1",
                                                                                  "nolang_s3_1", "linear_s3_1")}
    assert conf["main_s3_1"]["projector_conf"]["transition_from"] == "exp/main_s2/latest.pth"
    assert conf["main_s3_1"]["projector_conf"]["transition_weight"] > 0
    assert conf["notrans_s3_1"]["projector_conf"]["transition_weight"] == 0
    assert conf["nolang_s3_1"]["projector_conf"]["lang_weight"] == 0
    assert conf["linear_s3_1"]["projector"] == "linear"
    for d in ("notrans_s3_1", "nolang_s3_1", "linear_s3_1"):  # one difference each from main (and the paths)
        diff = {k for k in conf["main_s3_1"] if conf[d].get(k) != conf["main_s3_1"][k]}
        assert diff <= {"projector", "projector_conf", "output_dir", "init_param", "config"}, (d, diff)
    lists = json.loads((dst / "dump" / "tiny_whisper_last" / "stats" / "lists" / "lists.json").read_text())
    assert lists["sizes"]["replay1"] > lists["sizes"]["replay2"] > lists["sizes"]["cs"]


def test_single_stage_row_has_the_same_number_of_updates(recipe):
    dst, _ = recipe
    exp = dst / "exp"

    def updates(d):
        c = yaml.safe_load((exp / d / "config.yaml").read_text())
        return c["max_epoch"] * c["num_iters_per_epoch"]

    four = sum(updates(d) for d in ("main_s1", "main_s2", "main_s3_1", "main_s3_2", "st_main"))
    assert updates("st_single") == four


def test_rerun_skips_every_training(recipe):
    dst, _ = recipe
    proc = run(dst, ["./run.sh", "--debug", "true", "--stage", "12", "--stop_stage", "16"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert proc.stdout.count("is complete, skipped") == 19  # 3 + 3 + 4 x 2 + 5 trainings (no LM pre-training)
    assert "training from scratch" not in proc.stdout


def test_bad_options_are_one_line(recipe):
    dst, _ = recipe
    proc = run(dst, ["./run.sh", "--ablations", "linear bogus"])
    assert proc.returncode == 2 and proc.stderr.startswith("ERROR [run.sh]: --ablations: unknown row 'bogus'")
    proc = run(dst, ["./run.sh", "--stage", "20"])
    assert proc.returncode == 2 and "unknown stage '20'" in proc.stderr
    proc = run(dst, ["./run.sh", "--pretrained", "maybe"])
    assert proc.returncode == 2 and proc.stderr.startswith("ERROR [run.sh]: option '--pretrained' takes true or false")
