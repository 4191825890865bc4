"""Dry run of every YAML config in the repo: training configs build their model, decoding configs parse."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

CONFIGS = sorted(p for p in [*REPO.glob("conf/**/*.yaml"), *REPO.glob("egs/**/conf/**/*.yaml")]
                 if "exp" not in p.parts and "dump" not in p.parts)


def kind(path: Path) -> str:
    conf = yaml.safe_load(path.read_text()) or {}
    if "beam_size" in conf:
        return "decode"
    if "text_encoder" in conf or "encoder" in conf:
        return "train"
    return "other"


def test_there_are_configs():
    kinds = {kind(p) for p in CONFIGS}
    assert {"train", "decode"} <= kinds, CONFIGS


@pytest.fixture(scope="module")
def tiny_ssl_checkpoint(tmp_path_factory) -> Path:
    """A tiny HuBERT in fairseq's checkpoint format, for configs with ``encoder: hubert``."""
    from salign.testing.tiny_ssl import save_fairseq, tiny_hubert

    return save_fairseq(tiny_hubert(), tmp_path_factory.mktemp("ssl") / "hubert_tiny.pt")


@pytest.mark.parametrize("path", [p for p in CONFIGS if kind(p) == "train"], ids=lambda p: str(p.relative_to(REPO)))
def test_training_config_builds_its_model(path, tiny_data, tiny_ssl_checkpoint):
    from espnet2.tasks.st import STTask

    from salign.tasks.st import SAlignSTTask

    conf = yaml.safe_load(path.read_text()) or {}
    # the comparison recipe's stock-ESPnet rows are ESPnet's own ST task
    task = SAlignSTTask if "text_encoder" in conf else STTask
    tokens = str(tiny_data / "tokens.txt")
    base = ["--config", str(path), "--token_list", tokens, "--src_token_list", tokens, "--token_type", "word",
            "--src_token_type", "word"]
    # parsing rejects unknown top-level keys (what --print_config checks); building the model checks the rest.
    # A config for raw audio (--feats_type raw) chooses its input itself: a frontend, or input_size for the wave.
    raw = "frontend" in conf or "input_size" in conf
    if conf.get("encoder") == "hubert":  # its checkpoint is a placeholder path: a tiny HuBERT stands in
        base += ["--encoder_conf", f"checkpoint={tiny_ssl_checkpoint}"]
    args = task.get_parser().parse_args(base + ([] if raw else ["--input_size", "80"]))
    model = task.build_model(args)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("path", [p for p in CONFIGS if kind(p) == "decode"], ids=lambda p: str(p.relative_to(REPO)))
def test_decoding_config_parses(path, tmp_path):
    from salign.bin.st_inference import get_parser

    args = get_parser().parse_args(["--config", str(path), "--output_dir", str(tmp_path),
                                    "--data_path_and_name_and_type", "x,speech,kaldi_ark"])
    assert args.beam_size >= 1


def test_no_absolute_paths_in_configs():
    bad = [str(p) for p in CONFIGS if any(t in p.read_text() for t in ("/home/", "/work/", "/tmp/", "/root/"))]
    assert not bad


def test_print_config_lists_the_salign_knobs():
    """``st_train --print_config`` (the real CLI) lists the alignment and model knobs."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "salign.bin.st_train", "--print_config"], capture_output=True,
                         text=True, check=True).stdout
    conf = yaml.safe_load(out)
    for key in ("text_encoder", "text_encoder_conf", "align", "align_conf", "init_from_mt", "model_conf"):
        assert key in conf, key
    assert conf["model_conf"]["mt_weight"] == 0.5 and conf["model_conf"]["shrink"] is True
