"""Dry run of every YAML config in the repo: training configs build their model, decoding configs parse."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

CONFIGS = sorted(p for p in [*REPO.glob("conf/**/*.yaml"), *REPO.glob("egs/**/conf/**/*.yaml"),
                              *REPO.glob("tests/conf/*.yaml")]
                 if "exp" not in p.parts and "dump" not in p.parts)
COMPARE_DIRS = [REPO / "egs" / "mini_mustc" / "conf" / "compare", REPO / "egs" / "mini_mustc" / "conf" / "compare"
                / "debug"]


def kind(path: Path) -> str:
    conf = yaml.safe_load(path.read_text()) or {}
    if "beam_size" in conf:
        return "decode"
    if "lm" in conf:  # the speech-LLM family: built by tests/llm/test_llm_configs.py
        return "llm"
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


@pytest.fixture(scope="module")
def tiny_whisper_dir(tmp_path_factory):
    """A tiny Whisper as a Hugging Face directory, the format tools/get_pretrained.sh converts to."""
    from salign.testing.tiny_formats import tiny_hf_whisper

    path = tmp_path_factory.mktemp("whisper") / "hf"
    tiny_hf_whisper().save_pretrained(path)
    return path


def test_the_whisper_config_names_the_converted_model_from_a_mustc_recipe():
    """conf/train_st_salign_whisper.yaml's checkpoint, read from a MuST-C recipe directory, is what
    tools/get_pretrained.sh whisper-base writes."""
    conf = yaml.safe_load((REPO / "conf" / "train_st_salign_whisper.yaml").read_text())
    recipe = REPO / "egs" / "mustc" / "en-de"
    assert (recipe / conf["encoder_conf"]["checkpoint"]).resolve() == (REPO / "tools" / "pretrained" / "whisper-base")


@pytest.mark.parametrize("path", [p for p in CONFIGS if kind(p) == "train"], ids=lambda p: str(p.relative_to(REPO)))
def test_training_config_builds_its_model(path, tiny_data, tiny_ssl_checkpoint, tiny_whisper_dir):
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
    if conf.get("encoder") == "whisper" and task is SAlignSTTask:  # the converted model: a tiny one in its format
        base += ["--encoder_conf", f"checkpoint={tiny_whisper_dir}"]
    args = task.get_parser().parse_args(base + ([] if raw else ["--input_size", "80"]))
    model = task.build_model(args)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("path", [p for p in CONFIGS if kind(p) == "decode"], ids=lambda p: str(p.relative_to(REPO)))
def test_decoding_config_parses(path, tmp_path):
    from salign.bin.st_inference import get_parser

    args = get_parser().parse_args(["--config", str(path), "--output_dir", str(tmp_path),
                                    "--data_path_and_name_and_type", "x,speech,kaldi_ark"])
    assert args.beam_size >= 1


def merged(cdir: Path, override: str) -> dict:
    """A comparison config as compare.sh writes it: ``base.yaml`` with each top-level key of the override replacing
    its own."""
    conf = yaml.safe_load((cdir / "base.yaml").read_text())
    conf.update(yaml.safe_load((cdir / override).read_text()) or {})
    return conf


@pytest.mark.parametrize("cdir", COMPARE_DIRS, ids=lambda p: str(p.relative_to(REPO)))
def test_compare_rows_share_one_base(cdir):
    """compare.sh's rows: one base config (model shape, batch, optimiser, schedule, epochs), a per-method override
    that only chooses the alignment loss, an MT pre-training that keeps the base's model shape (its checkpoint
    initialises every row), and ESPnet's stock model with the same batch and optimiser, frame rate, width and depth."""
    methods = {p.stem: yaml.safe_load(p.read_text()) for p in (cdir / "method").glob("*.yaml")}
    assert set(methods) == {"baseline", "contrastive", "adversarial", "adversarial_official", "ot"}
    assert methods["baseline"] == {"align": None}
    for name, override in methods.items():
        assert set(override) <= {"align", "align_conf"}, name
    base = yaml.safe_load((cdir / "base.yaml").read_text())
    assert "align" not in base
    shape = ("preencoder", "preencoder_conf", "encoder", "encoder_conf", "text_encoder", "text_encoder_conf",
             "decoder", "decoder_conf")
    assert not set(shape) & set(yaml.safe_load((cdir / "mt.yaml").read_text()))
    budget = ("optim", "optim_conf", "scheduler", "scheduler_conf", "batch_type", "batch_size", "keep_nbest_models")
    stock = yaml.safe_load((cdir / "train_st_stock_espnet.yaml").read_text())
    assert stock["max_epoch"] <= base["max_epoch"]  # same CPU time: its (costlier) epochs may be fewer
    assert all(stock.get(k) == base.get(k) for k in budget)
    # ESPnet's hierarchical encoder shaped as salign's: `encoder` is the A-enc exactly (so the shared ASR
    # pre-training initialises both), `hier_encoder` has T-enc's depth; both read the same (stacked) dumps
    assert stock["encoder_conf"] == base["encoder_conf"] and "preencoder" not in base
    assert stock["hier_encoder_conf"]["num_blocks"] == base["text_encoder_conf"]["num_blocks"]
    assert stock["hier_encoder_conf"]["output_size"] == base["encoder_conf"]["output_size"]


@pytest.mark.parametrize("cdir", COMPARE_DIRS, ids=lambda p: str(p.relative_to(REPO)))
def test_compare_merged_configs_build_their_models(cdir, tiny_data, tmp_path):
    """Each row's merged config (and the MT pre-training's) builds salign's model; the stock row's builds ESPnet's
    ESPnetSTModel (salign's task rejects it) with its ASR branch."""
    from espnet2.st.espnet_model import ESPnetSTModel
    from espnet2.tasks.st import STTask

    from salign.tasks.st import SAlignSTTask

    tokens = str(tiny_data / "tokens.txt")
    common = ["--token_list", tokens, "--src_token_list", tokens, "--token_type", "word", "--src_token_type", "word",
              "--input_size", "80"]
    for override in ["mt.yaml", *(f"method/{p.name}" for p in sorted((cdir / "method").glob("*.yaml")))]:
        path = tmp_path / override.replace("/", "_")
        path.write_text(yaml.safe_dump(merged(cdir, override)))
        args = SAlignSTTask.get_parser().parse_args(["--config", str(path), *common])
        model = SAlignSTTask.build_model(args)
        assert (model.align is None) == (override in ("mt.yaml", "method/baseline.yaml")), override
    args = STTask.get_parser().parse_args(["--config", str(cdir / "train_st_stock_espnet.yaml"), *common])
    model = STTask.build_model(args)
    assert type(model) is ESPnetSTModel and model.asr_weight == 0.3 and model.mt_weight == 0.0
    assert model.extra_asr_decoder is not None and model.ctc is not None


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
