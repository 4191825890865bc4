"""Dry run of every speech-LLM training config (a YAML with ``lm:``): it builds its model through ``LLMSTTask``,
with tiny stand-ins for the local model files it names (an HF LM directory, a HuBERT or Whisper checkpoint)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

CONFIGS = sorted(p for p in [*REPO.glob("conf/**/*.yaml"), *REPO.glob("egs/**/conf/**/*.yaml"),
                              *REPO.glob("tests/conf/*.yaml")]
                 if "exp" not in p.parts and "dump" not in p.parts and "lm" in (yaml.safe_load(p.read_text()) or {}))


def test_the_llm_configs_are_found():
    names = {p.name for p in CONFIGS}
    assert {"train_st_llm.yaml", "train_st_llm_whisper.yaml", "train_st_llm_tiny_test.yaml",
            "train_st_llm_hf_test.yaml"} <= names


@pytest.fixture(scope="module")
def tiny_ssl_checkpoint(tmp_path_factory) -> Path:
    from salign.testing.tiny_ssl import save_fairseq, tiny_hubert

    return save_fairseq(tiny_hubert(), tmp_path_factory.mktemp("ssl") / "hubert_tiny.pt")


@pytest.fixture(scope="module")
def tiny_whisper_checkpoint(tmp_path_factory) -> Path:
    from salign.testing.tiny_whisper import save_openai, tiny_whisper

    return save_openai(tiny_whisper(), tmp_path_factory.mktemp("whisper") / "whisper_tiny.pt")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_llm_config_builds_its_model(path, tiny_data, tiny_qwen2, tiny_ssl_checkpoint, tiny_whisper_checkpoint):
    from salign.llm.task import LLMSTTask

    conf = yaml.safe_load(path.read_text())
    tokens = str(tiny_data / "tokens.txt")
    base = ["--config", str(path), "--token_list", tokens, "--src_token_list", tokens, "--token_type", "word",
            "--src_token_type", "word"]
    if conf.get("lm") == "hf":  # the LM directory is a placeholder: a tiny Qwen2 stands in
        base += ["--lm_conf", f"path={tiny_qwen2}"]
    if conf.get("encoder") == "hubert":
        base += ["--encoder_conf", f"checkpoint={tiny_ssl_checkpoint}"]
    if conf.get("encoder") == "whisper":  # likewise a placeholder: a tiny openai-format Whisper stands in
        base += ["--encoder_conf", f"checkpoint={tiny_whisper_checkpoint}"]
    raw = "frontend" in conf or "input_size" in conf
    args = LLMSTTask.get_parser().parse_args(base + ([] if raw else ["--input_size", "80"]))
    model = LLMSTTask.build_model(args)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0


@pytest.mark.slow
def test_missing_lm_directory_is_one_line_cli_error(tiny_data, tmp_path):
    """The real CLI exits 2 with one ``ERROR`` line naming the missing directory (ESPnet's own chatter before it —
    the command line, nltk's failed look-ups — is not ours)."""
    from tests.conftest import run_tool
    from tests.llm.test_llm_train import HF_CONFIG, llm_args

    proc = run_tool("salign.bin.llm_train", llm_args(tiny_data, tmp_path / "exp", HF_CONFIG, tokens=False)
                    + ["--lm_conf", f"path={tmp_path / 'no_model'}"], tmp_path, "log", check=False)
    errors = [line for line in proc.stdout.splitlines() if line.startswith("ERROR")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stdout, proc.stdout[-2000:]
    assert str(tmp_path / "no_model") in errors[0] and "nothing is downloaded" in errors[0]
