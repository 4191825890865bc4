"""The MoE projector between S-Align's A-enc and T-enc (``--speech_adapter moe``): on every A-enc frame before the
CTC shrink, its routing losses added on speech batches, frame labels at the A-enc rate; none = the Linear adapter."""
from __future__ import annotations

import pytest
import torch

from tests.st.test_model import batch, build

MOE = ["--speech_adapter", "moe", "--speech_adapter_conf",
       "groups=[en, es]", "--speech_adapter_conf", "experts_per_group=2", "--speech_adapter_conf", "top_k=1",
       "--speech_adapter_conf", "hidden_size=16", "--speech_adapter_conf", "lang_weight=0.5",
       "--speech_adapter_conf", "balance_weight=0.25", "--model_conf", "src_lang=en"]


def speech_forward(model, b, **extra):
    return model(text=b["text"], text_lengths=b["text_lengths"], speech=b["speech"], speech_lengths=b["speech_lengths"],
                 src_text=b["src_text"], src_text_lengths=b["src_text_lengths"], **extra)


def test_without_an_adapter_the_linear_adapter_is_unchanged(tiny_data):
    model = build(tiny_data)
    assert model.adapter is None
    assert not any(k.startswith("adapter.") for k in model.state_dict())
    assert "speech_norm.weight" in model.state_dict()


def test_moe_adapter_adds_its_weighted_losses_on_speech_batches(tiny_data):
    torch.manual_seed(0)
    model = build(tiny_data, *MOE).train()
    b = batch(tiny_data)
    _, stats, _ = speech_forward(model, b)
    for key in ("loss_lang", "loss_balance", "route_acc", "router_entropy", "group_en", "group_es"):
        assert key in stats, key
    # the same model and batch with the adapter's loss weights at 0: the difference is exactly their weighted sum
    with torch.no_grad():
        l_on = build_and_eval(tiny_data, model.state_dict(), b, 0.5, 0.25)
        l_off = build_and_eval(tiny_data, model.state_dict(), b, 0.0, 0.0)
    on_stats = l_on[1]
    expected = 0.5 * on_stats["loss_lang"] + 0.25 * on_stats["loss_balance"]
    assert float(l_on[0] - l_off[0]) == pytest.approx(float(expected), rel=1e-4, abs=1e-5)
    # src_lang en = group 0: the language loss is the mean -log p(en | frame) over valid A-enc frames
    assert float(on_stats["route_acc"]) == pytest.approx(float(on_stats["group_en"]), abs=1e-6)


def build_and_eval(tiny_data, state, b, lang_weight, balance_weight):
    model = build(tiny_data, *MOE)
    model.load_state_dict(state)
    model.adapter.lang_weight, model.adapter.balance_weight = lang_weight, balance_weight
    model.eval()
    loss, stats, _ = speech_forward(model, b)
    return loss, stats


def test_the_st_loss_trains_the_routed_experts_and_the_routers(tiny_data):
    torch.manual_seed(0)
    model = build(tiny_data, *MOE).train()
    loss, _, _ = speech_forward(model, batch(tiny_data))
    loss.backward()
    grads = [p.grad for p in model.adapter.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in model.speech_proj.parameters())  # Identity: the MoE replaces the Linear


def test_frame_labels_at_the_a_enc_rate_drive_the_language_loss(tiny_data):
    torch.manual_seed(0)
    model = build(tiny_data, *MOE).eval()
    b = batch(tiny_data)
    with torch.no_grad():
        aenc, alens = model.encode_speech(b["speech"], b["speech_lengths"])
        frames = torch.full((aenc.size(0), aenc.size(1)), -1, dtype=torch.long)
        frames[:, :2] = 1  # es on the first two frames, the rest unknown
        _, stats_es, _ = speech_forward(model, b, lang_frames=frames)
        _, stats_en, _ = speech_forward(model, b)  # utterance label from src_lang (en)
    assert float(stats_es["loss_lang"]) != pytest.approx(float(stats_en["loss_lang"]), abs=1e-4)


def test_adapter_that_stacks_frames_is_refused(tiny_data):
    with pytest.raises(ValueError, match="stack 1"):
        build(tiny_data, *MOE, "--speech_adapter_conf", "stack=2")
