"""Layer selection by cross-modal retrieval on the LLM's layers, and its layers reaching AI-STA training:
a short warm-up (``llm_train``), ``select_layers`` on it, then training with ``--align ot`` reading the file."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_tool
from tests.llm.test_llm_train import TINY_CONFIG, epoch_stats, llm_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def selection(tiny_data, tmp_path_factory) -> Path:
    """The warm-up model's working directory with ``layers.yaml`` written by select_layers (top 2 of 3 layers)."""
    work = tmp_path_factory.mktemp("llm_select")
    run_tool("salign.bin.llm_train", llm_args(tiny_data, work / "warmup", TINY_CONFIG) + ["--max_epoch", "1"],
             work, "log_warmup")
    run_tool("salign.bin.select_layers", [
        "--st_train_config", work / "warmup" / "config.yaml", "--st_model_file", work / "warmup" / "1epoch.pth",
        "--feats", tiny_data / "feats.scp", "--src_text", tiny_data / "src_text", "--top_k", "2",
        "--weighting", "r1", "--include_input", "--out", work / "layers.yaml"], work, "log_select")
    return work


def test_select_layers_scores_every_lm_layer(selection):
    out = yaml.safe_load((selection / "layers.yaml").read_text())
    assert sorted(out["retrieval"]) == [0, 1, 2]  # LM input + the tiny LM's 2 blocks
    assert out["n_utts"] == 12 and len(out["layers"]) == 2 and abs(sum(out["weights"]) - 1) < 1e-4
    for s in out["retrieval"].values():
        assert 0.0 <= s["r1"] <= s["r5"] <= 1.0
    log = (selection / "log_select").read_text()
    assert f"selected layers {out['layers']}" in log


def test_training_uses_exactly_the_selected_layers(selection, tiny_data):
    layers_file = selection / "layers.yaml"
    out = yaml.safe_load(layers_file.read_text())
    exp = selection / "aista"
    run_tool("salign.bin.llm_train", llm_args(tiny_data, exp, TINY_CONFIG) + [
        "--max_epoch", "1", "--align", "ot", "--align_conf", f"layers_file={layers_file}"], selection, "log_aista")
    stats = epoch_stats((selection / "log_aista").read_text())[1]
    used = sorted(int(m.group(1)) for k in stats if (m := re.fullmatch(r"ot_l(\d+)", k)))
    assert used == sorted(out["layers"])
    weighted = sum(w * stats[f"ot_l{k}"] for k, w in zip(out["layers"], out["weights"]))
    assert stats["loss_ot"] == pytest.approx(weighted, rel=1e-2, abs=1e-3)
    config = yaml.safe_load((exp / "config.yaml").read_text())
    assert config["align"] == "ot" and config["align_conf"]["layers_file"] == str(layers_file)
