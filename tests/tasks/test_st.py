"""The ESPnet task (salign/tasks/st.py): building the model from arguments, --init_from_mt, --lr_scale, the class
choices (alignment methods from the loss registry) and the update clock's accumulation factor."""
from __future__ import annotations

import pytest
import torch

from salign.losses.composite import CompositeAlign
from salign.losses.registry import ALIGN_METHODS
from salign.tasks.st import SAlignSTTask, align_choices, load_mt_checkpoint
from tests.conftest import TEST_CONFIG
from tests.st.test_model import build


def test_align_choices_are_the_loss_registry():
    assert align_choices.classes is ALIGN_METHODS
    assert set(align_choices.choices()) == {*ALIGN_METHODS, None}
    assert align_choices.get_class("multi") is CompositeAlign


def test_accum_grad_sets_the_update_clock(tiny_data):
    assert build(tiny_data).clock.accum_grad == 1
    model = build(tiny_data, "--accum_grad", "3")
    assert model.clock.accum_grad == 3
    model.clock.forward_count.fill_(8)
    assert model.num_updates == 2


def test_building_from_a_saved_model_never_rereads_init_from_mt(tiny_data, tmp_path):
    """config.yaml keeps --init_from_mt; a model built from it must take its weights from the model file only (the
    MT checkpoint may be gone, as for a packed model)."""
    import yaml

    model = build(tiny_data)
    args = SAlignSTTask.get_parser().parse_args([
        "--config", str(TEST_CONFIG), "--token_type", "word", "--src_token_type", "word", "--token_list",
        str(tiny_data / "tokens.txt"), "--src_token_list", str(tiny_data / "tokens.txt"), "--input_size", "80"])
    config = vars(args)
    config["init_from_mt"] = str(tmp_path / "gone.pth")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save(model.state_dict(), tmp_path / "model.pth")
    built, _ = SAlignSTTask.build_model_from_file(tmp_path / "config.yaml", tmp_path / "model.pth")
    for k, v in model.state_dict().items():
        assert torch.equal(v, built.state_dict()[k]), k
    with pytest.raises(Exception, match="no such file"):
        build(tiny_data, "--init_from_mt", str(tmp_path / "gone.pth"))


def test_init_from_mt_reports_groups_and_rejects_mismatches(tiny_data, tmp_path, capsys):
    mt = build(tiny_data)
    path = tmp_path / "mt.pth"
    torch.save(mt.state_dict(), path)
    st = build(tiny_data)
    report = load_mt_checkpoint(st, str(path))
    assert report["text_encoder"].startswith("initialised") and report["decoder"].startswith("initialised")
    assert report["encoder"].startswith("not initialised") and report["align"].startswith("not initialised")
    for k, v in st.text_encoder.state_dict().items():
        assert torch.equal(v, mt.text_encoder.state_dict()[k])
    conv = "embed.conv.0.weight"
    assert not torch.equal(st.encoder.state_dict()[conv], mt.encoder.state_dict()[conv])
    assert "parameter groups after --init_from_mt" in capsys.readouterr().out
    bigger = build(tiny_data, "--text_encoder_conf", "num_blocks=3")
    with pytest.raises(Exception, match="does not fit"):
        load_mt_checkpoint(bigger, str(path))


def test_a_wrongly_typed_knob_fails_at_build_time(tiny_data):
    with pytest.raises(Exception, match="mixup_start"):
        build(tiny_data, "--align_conf", "mixup_start=abc")
    with pytest.raises(Exception, match="mt_weight"):
        build(tiny_data, "--model_conf", "mt_weight=high")


def test_lr_scale_gives_modules_their_own_learning_rate(tiny_data):
    parser = SAlignSTTask.get_parser()
    base = ["--config", str(TEST_CONFIG), "--token_type", "word", "--src_token_type", "word", "--token_list",
            str(tiny_data / "tokens.txt"), "--src_token_list", str(tiny_data / "tokens.txt"), "--input_size", "80",
            "--optim", "adam", "--optim_conf", "lr=0.001"]
    args = parser.parse_args(base + ["--lr_scale", "{encoder: 4.0, speech_proj: 4.0}"])
    model = SAlignSTTask.build_model(args)
    (opt,) = SAlignSTTask.build_optimizers(args, model)
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert sorted(by_lr) == [0.001, 0.004]
    assert {id(p) for p in model.encoder.parameters()} <= by_lr[0.004]
    assert {id(p) for p in model.decoder.parameters()} <= by_lr[0.001]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    bad = parser.parse_args(base + ["--lr_scale", "encodr=4.0"])
    with pytest.raises(Exception, match="encodr.*fix: use top-level module names"):
        SAlignSTTask.build_optimizers(bad, SAlignSTTask.build_model(bad))


def test_lr_scale_follows_a_tied_parameter_to_its_scaled_module(tiny_data):
    parser = SAlignSTTask.get_parser()
    args = parser.parse_args(["--config", str(TEST_CONFIG), "--token_type", "word", "--src_token_type", "word",
                              "--token_list", str(tiny_data / "tokens.txt"), "--src_token_list",
                              str(tiny_data / "tokens.txt"), "--input_size", "80", "--optim", "adam",
                              "--optim_conf", "lr=0.001", "--lr_scale", "{src_embed: 2.0}"])
    model = SAlignSTTask.build_model(args)
    (opt,) = SAlignSTTask.build_optimizers(args, model)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lr_of[id(model.src_embed.weight)] == 0.002  # also the CTC output layer when tied
