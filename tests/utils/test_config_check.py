"""salign.bin.check_config: every shipped config passes; each hostile input is one ERROR line (file, line, fix);
egs/TEMPLATE/st.sh runs it before stage 1. No model is built."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

CONFIGS = sorted(p for p in [*REPO.glob("conf/**/*.yaml"), *REPO.glob("egs/**/conf/**/*.yaml"),
                              *REPO.glob("tests/conf/*.yaml")]
                 if "exp" not in p.parts and "dump" not in p.parts)


def base_of(path: Path):
    """compare.sh's override files (conf/compare/{mt,method/*,llm/lm,llm/method/*}.yaml) are merged on the
    base.yaml of their directory (or its parent, for method/): that base, else None."""
    if path.name == "base.yaml" or "stock_espnet" in path.name:
        return None
    for d in (path.parent, path.parent.parent):
        if (d / "base.yaml").is_file():
            return d / "base.yaml"
    return None


def task_of(conf: dict, path: Path) -> str:
    if "beam_size" in conf:
        return "decode"
    if "stock_espnet" in path.name:
        return "espnet"
    return "llm" if "lm" in conf else "st"


@pytest.fixture(scope="module")
def check():
    from salign.utils.config_check import check_config

    return check_config


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_config_passes(path, check, tmp_path):
    conf = yaml.safe_load(path.read_text()) or {}
    base = base_of(path)
    target = path
    if base is not None:  # an override: checked as compare.sh writes it (base with these keys replaced)
        merged = yaml.safe_load(base.read_text())
        merged.update(conf)
        conf, target = merged, tmp_path / path.name
        target.write_text(yaml.safe_dump(merged))
    task = task_of(conf, path)
    assert [str(p) for p in check(str(target), task)] == []
    if task == "decode":  # the stock-ESPnet row decodes with ESPnet's st_inference and the same decoding config
        assert [str(p) for p in check(str(target), "espnet_decode")] == []


ST = """\
encoder: transformer
encoder_conf: {output_size: 32, attention_heads: 2, linear_units: 64, num_blocks: 1, input_layer: conv2d}
decoder: transformer
decoder_conf: {attention_heads: 2, linear_units: 64, num_blocks: 1}
model_conf:
    st_weight: 0.7
    mt_weight: 0.5
    shrink: true
align: adversarial
align_conf:
    lambda_max: 4.0
    mixup_batch_prob: 0.3
optim: adam
optim_conf: {lr: 0.002, betas: [0.9, 0.98]}
scheduler: warmuplr
scheduler_conf: {warmup_steps: 100}
max_epoch: 3
batch_size: 8
best_model_criterion: [[valid, acc, max]]
"""

MULTI = """\
align: multi
align_conf:
  methods:
    - {name: adversarial, weight: 1.0, conf: {lambda_max: 1.0}}
    - {name: ot, weight: 0.5, conf: {epsilon: 0.1}}
"""

LLM = """\
encoder: transformer
encoder_conf: {output_size: 32, num_blocks: 1}
projector: linear
projector_conf: {stack: 2}
lm: tiny
lm_conf: {hidden_size: 32, num_blocks: 2}
model_conf: {st_weight: 1.0, ctc_weight: 0.3}
"""

DECODE = """\
beam_size: 5
maxlenratio: 2.0
"""

STOCK = """\
encoder: transformer
encoder_conf: {output_size: 32, num_blocks: 1}
model_conf: {asr_weight: 0.3, mtlalpha: 0.3}
"""

# (name, task, base text, line replaced, its replacement, key, line number, words of the message, words of the fix)
HOSTILE = [
    ("typo in align_conf", "st", ST, "    lambda_max: 4.0", "    lambda_mx: 4.0", "align_conf.lambda_mx", 11,
     "unknown key of AdversarialAlign", "did you mean lambda_max?"),
    ("typo in model_conf", "st", ST, "    mt_weight: 0.5", "    mt_wieght: 0.5", "model_conf.mt_wieght", 7,
     "unknown key of SAlignSTModel", "did you mean mt_weight?"),
    ("typo in encoder_conf", "st", ST, "num_blocks: 1, input_layer", "num_blokcs: 1, input_layer",
     "encoder_conf.num_blokcs", 2, "unknown key of TransformerEncoder", "did you mean num_blocks?"),
    ("lambda_max -4", "st", ST, "    lambda_max: 4.0", "    lambda_max: -4", "align_conf.lambda_max", 11,
     "-4 is out of range: must be >= 0", "give a value >= 0"),
    ("mixup_batch_prob 1.5", "st", ST, "    mixup_batch_prob: 0.3", "    mixup_batch_prob: 1.5",
     "align_conf.mixup_batch_prob", 12, "1.5 is out of range: must be in [0, 1]", "give a value in [0, 1]"),
    ("adv_grad_scale typo", "st", ST, "    mixup_batch_prob: 0.3", "    adv_grad_scale: oficial",
     "align_conf.adv_grad_scale", 12, "unknown setting 'oficial'", "did you mean official?"),
    ("adv_grad_scale -0.1", "st", ST, "    mixup_batch_prob: 0.3", "    adv_grad_scale: -0.1",
     "align_conf.adv_grad_scale", 12, "-0.1 is out of range: must be >= 0", "give a value >= 0"),
    ("batch_size -8", "st", ST, "batch_size: 8", "batch_size: -8", "batch_size", 18,
     "-8 is out of range: must be > 0", "give a value > 0"),
    ("lr string", "st", ST, "lr: 0.002", "lr: 2e-3", "optim_conf.lr", 14, "must be a number, got the string '2e-3'",
     "write 2.0e-3 or 0.002: YAML reads 2e-3 as a string"),
    ("unknown top-level key", "st", ST, "max_epoch: 3", "max_epochs: 3", "max_epochs", 17, "unknown option",
     "did you mean max_epoch?"),
    ("wrong top-level type", "st", ST, "max_epoch: 3", "max_epoch: three", "max_epoch", 17,
     "must be an integer, got 'three'", "write an integer"),
    ("wrong type in model_conf", "st", ST, "    shrink: true", "    shrink: 3", "model_conf.shrink", 8,
     "must be true or false, got 3", "write true or false"),
    ("float for an integer", "st", ST, "num_blocks: 1}", "num_blocks: 1.5}", "decoder_conf.num_blocks", 4,
     "must be an integer, got 1.5", "write an integer"),
    ("unknown class", "st", ST, "align: adversarial", "align: adversarail", "align", 9,
     "unknown choice 'adversarail'", "did you mean adversarial?"),
    ("scheduler_conf typo", "st", ST, "{warmup_steps: 100}", "{warmup_step: 100}", "scheduler_conf.warmup_step", 16,
     "unknown key of WarmupLR", "did you mean warmup_steps?"),
    ("optim_conf typo", "st", ST, "betas: [0.9", "beta: [0.9", "optim_conf.beta", 14, "unknown key of Adam",
     "did you mean betas?"),
    ("key set by the task", "st", ST, "    lambda_max: 4.0", "    dim: 4", "align_conf.dim", 11,
     "is set by the task", "remove dim"),
    ("multi member typo", "st", MULTI, "conf: {epsilon: 0.1}", "conf: {epsilonn: 0.1}",
     "align_conf.methods[1].conf.epsilonn", 5, "unknown key of OTAlign", "did you mean epsilon?"),
    ("multi member range", "st", MULTI, "conf: {lambda_max: 1.0}", "conf: {lambda_max: -1.0}",
     "align_conf.methods[0].conf.lambda_max", 4, "out of range", ">= 0"),
    ("llm lm_conf typo", "llm", LLM, "{hidden_size: 32", "{hiden_size: 32", "lm_conf.hiden_size", 6,
     "unknown key of TinyCausalLM", "did you mean hidden_size?"),
    ("llm projector range", "llm", LLM, "{stack: 2}", "{stack: 0}", "projector_conf.stack", 4, "out of range",
     "> 0"),
    ("llm model_conf weight", "llm", LLM, "ctc_weight: 0.3", "ctc_weight: -0.3", "model_conf.ctc_weight", 7,
     "out of range", ">= 0"),
    ("decode key typo", "decode", DECODE, "beam_size: 5", "beam_sise: 5", "beam_sise", 1, "unknown option",
     "did you mean beam_size?"),
    ("decode range", "decode", DECODE, "beam_size: 5", "beam_size: 0", "beam_size", 1, "out of range", "> 0"),
    ("stock ESPnet model_conf typo", "espnet", STOCK, "mtlalpha: 0.3", "mtlalpa: 0.3", "model_conf.mtlalpa", 3,
     "unknown key of ESPnetSTModel", "did you mean mtlalpha?"),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_config_is_one_line_with_file_line_and_fix(case, check, tmp_path):
    _, task, text, old, new, key, line, what, fix = case
    assert old in text
    good = tmp_path / "good.yaml"
    good.write_text(text)
    assert check(str(good), task) == []  # the unmodified text is fine
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    problems = check(str(path), task)
    assert len(problems) == 1, [str(p) for p in problems]
    p = problems[0]
    assert (p.path, p.line, p.key) == (str(path), line, key), str(p)
    assert what in p.what and fix in (p.fix or ""), str(p)
    assert str(p).startswith(f"{path}:{line}: {key}: ") and str(p).endswith(")")


def test_cli_lists_every_problem_and_exits_2(tmp_path, capsys):
    from salign.bin.check_config import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(ST.replace("    lambda_max: 4.0", "    lambda_max: -4").replace("batch_size: 8", "batch_size: -8")
                   .replace("lr: 0.002", "lr: 2e-3"))
    good = tmp_path / "good.yaml"
    good.write_text(ST)
    dec = tmp_path / "decode.yaml"
    dec.write_text("beam_sise: 5\n")
    assert main(["--config", str(good), "--config", str(bad), "--decode_config", str(dec)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and all(line.startswith("ERROR [check_config]: ") for line in err), err
    assert [line.split(": ")[1] for line in err] == [f"{bad}:11", f"{bad}:14", f"{bad}:18", f"{dec}:1"]
    assert main(["--config", str(good), "--decode_config", str(tmp_path / "none.yaml")]) == 2
    assert "no such config" in capsys.readouterr().err
    assert main(["--config", str(good), "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["--config", str(good)]) == 0
    assert capsys.readouterr().out.startswith("OK [check_config]: ")


def test_bad_yaml_is_one_line(tmp_path, check):
    path = tmp_path / "bad.yaml"
    path.write_text("encoder: transformer\nencoder_conf: {output_size: 32\nmax_epoch: 3\n")
    problems = check(str(path), "st")
    assert len(problems) == 1 and "not valid YAML" in problems[0].what and problems[0].line


def test_ranges_are_declared_in_one_place():
    from salign.utils import config_check as cc

    assert cc.range_of("lambda_max", "salign.losses.adversarial.AdversarialAlign") is cc.NONNEG
    assert cc.range_of("mixup_batch_prob", "salign.losses.adversarial.AdversarialAlign") is cc.PROB
    assert cc.range_of("dropout_rate", "espnet2.asr.encoder.transformer_encoder.TransformerEncoder") is cc.DROPOUT
    assert cc.range_of("batch_size") is cc.POSITIVE
    assert 1.0 not in cc.DROPOUT and 0.0 in cc.DROPOUT and 0.0 not in cc.POSITIVE and float("nan") not in cc.PROB
    for enc in ("salign.st.hubert.HuBERTEncoder", "salign.st.whisper.WhisperEncoder"):  # fine-tuning knobs
        assert cc.range_of("mask_prob", enc) is cc.PROB and cc.range_of("mask_channel_length", enc) is cc.POSITIVE
        assert cc.range_of("layerdrop", enc) is cc.DROPOUT and cc.range_of("proj_dropout", enc) is cc.DROPOUT
    from salign.losses.adversarial import ADV_GRAD_SCALES  # the named settings the checker accepts are the module's

    assert cc.CLASS_WORDS["salign.losses.adversarial.AdversarialAlign"]["adv_grad_scale"] == tuple(ADV_GRAD_SCALES)


@pytest.mark.slow
def test_st_sh_fails_before_stage_1_on_a_bad_config(tmp_path):
    """``run.sh --stage 11 --st_config <bad>``: exit 2 with the ERROR line, before any stage runs."""
    from tests.integration.scratch import mini_recipe, run

    recipe = mini_recipe(tmp_path)
    text = (recipe / "conf" / "debug" / "train_st_salign.yaml").read_text()
    (recipe / "conf" / "debug" / "bad.yaml").write_text(text + "align_conf_typo: 1\n")
    proc = run(recipe, ["./run.sh", "--debug", "true", "--stage", "11", "--st_config", "conf/debug/bad.yaml"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = len(text.splitlines()) + 1
    assert f"ERROR [check_config]: conf/debug/bad.yaml:{line}: align_conf_typo: unknown option" in proc.stderr
    assert proc.stderr.count("ERROR") == 1, proc.stderr
    assert "stage 11" not in proc.stdout and not (recipe / "exp").exists(), proc.stdout
