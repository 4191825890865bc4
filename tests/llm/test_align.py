"""AI-STA in its own setting: alignment losses between the speech and transcript segments of chosen LM layers."""
from __future__ import annotations

from typing import Dict, List

import pytest
import torch

from salign.llm.align import segment
from salign.losses.composite import CompositeAlign
from salign.losses.ot import OTAlign, sinkhorn_divergence
from tests.llm.conftest import build_model, fake_batch


def ot_model(layers: List[int], **conf):
    """A tiny-LM model (2 blocks) whose only training loss is OT at ``layers`` (every CE weight 0)."""
    model = build_model(st_weight=0.0, mt_weight=0.0, align=OTAlign(dim=32, layers=layers, **conf))
    model.train()
    return model


def grads(model, layers: List[int]) -> Dict[str, float]:
    """Gradient norms of the parts of the model after one backward of the OT loss at ``layers``."""
    model.zero_grad()
    loss, stats, _ = model(**fake_batch(model))
    assert float(stats["loss_ot"]) > 0
    loss.sum().backward()

    def norm(module: torch.nn.Module) -> float:
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    lm = model.lm
    out = {f"block{i + 1}": norm(b) for i, b in enumerate(lm.blocks)}
    assert lm.head.weight is lm.embedding.weight  # tied: the output layer is the (input) embedding table
    out.update(encoder=norm(model.encoder), projector=norm(model.projector), embedding=norm(lm.embedding),
               norm=norm(lm.norm))
    return out


def test_segment_cuts_each_utterance_and_zeroes_padding():
    h = torch.arange(2 * 6, dtype=torch.float).view(2, 6, 1)
    out = segment(h, torch.tensor([1, 3]), torch.tensor([3, 2]))
    assert out[..., 0].tolist() == [[1, 2, 3], [9, 10, 0]]


def test_ot_on_lm_layer_1_reaches_only_the_parts_below_it():
    g = grads(ot_model([1]), [1])
    for part in ("block1", "encoder", "projector", "embedding"):
        assert g[part] > 0, part
    for part in ("block2", "norm"):  # above the top chosen layer: untouched by the OT term
        assert g[part] == 0, part


def test_ot_on_the_top_layer_reaches_the_final_norm():
    g = grads(ot_model([2]), [2])
    for part in ("block1", "block2", "norm", "encoder", "projector"):
        assert g[part] > 0, part


def test_ot_on_layer_0_trains_the_speech_side_and_the_embeddings_only():
    g = grads(ot_model([0]), [0])
    assert g["projector"] > 0 and g["encoder"] > 0 and g["embedding"] > 0
    assert g["block1"] == g["block2"] == g["norm"] == 0


def reference_ot(model, batch, layer: int) -> float:
    """OT at ``layer`` computed one utterance at a time (no padding anywhere), averaged over the batch."""
    values = []
    with torch.no_grad():
        enc, enc_lens = model.encode_speech(batch["speech"], batch["speech_lengths"])
        s_emb, s_lens = model.speech_embeds(enc, enc_lens)
        for i in range(s_emb.size(0)):
            n_s, n_t = int(s_lens[i]), int(batch["src_text_lengths"][i])
            st = model.assemble("st", s_emb[i: i + 1, :n_s], s_lens[i: i + 1])
            src = batch["src_text"][i: i + 1, :n_t]
            mt = model.assemble("mt", model.lm.embed(src), torch.tensor([n_t]))
            hs = model.lm(st.embeds, st.mask, st.position_ids, output_hidden_states=True).hidden_states[layer]
            ht = model.lm(mt.embeds, mt.mask, mt.position_ids, output_hidden_states=True).hidden_states[layer]
            xs = hs[:, int(st.input_start[0]): int(st.input_start[0]) + n_s]
            xt = ht[:, int(mt.input_start[0]): int(mt.input_start[0]) + n_t]
            ones = torch.ones
            div, _ = sinkhorn_divergence(xs, ones(1, n_s, dtype=torch.bool), xt, ones(1, n_t, dtype=torch.bool),
                                         model.align.epsilon, model.align.n_iters, model.align.cost)
            values.append(float(div[0]))
    return sum(values) / len(values)


@pytest.mark.parametrize("layer", [1, 2])
def test_batched_ot_equals_the_loss_on_each_utterance_alone(layer):
    # the batch has utterances of different speech and transcript lengths: the masks and segment positions matter,
    # and a wrong layer gives another value
    model = ot_model([layer])
    model.eval()
    batch = fake_batch(model)
    with torch.no_grad():
        _, stats, _ = model(**batch)
    assert float(stats[f"ot_l{layer}"]) == pytest.approx(reference_ot(model, batch, layer), rel=1e-4, abs=1e-6)
    other = 3 - layer
    assert abs(reference_ot(model, batch, other) - float(stats[f"ot_l{layer}"])) > 1e-4


def test_multi_composes_ot_and_contrastive_on_lm_states():
    members = [{"name": "ot", "weight": 1.0, "conf": {"layers": [1]}},
               {"name": "contrastive", "weight": 0.5, "conf": {}}]
    model = build_model(align=CompositeAlign(dim=32, methods=members))
    model.train()
    loss, stats, _ = model(**fake_batch(model))
    loss.sum().backward()
    assert "ot_loss" in stats and "contrastive_loss" in stats and "loss_mt" in stats
    assert int(model.state_dict()["forward_count"]) == 1


def test_text_only_batches_skip_the_alignment():
    model = ot_model([1])
    batch = {k: v for k, v in fake_batch(model).items() if not k.startswith("speech")}
    model.mt_weight = 0.5
    _, stats, _ = model(**batch)
    assert "loss_align" not in stats and "loss_mt" in stats


def test_host_branches_give_the_training_states():
    model = ot_model([1])
    model.eval()
    batch = fake_batch(model)
    src, lens = batch["src_text"], batch["src_text_lengths"]
    top, layers = model.encode_branch("mt", model.embed_tokens(src), lens)
    with torch.no_grad():
        mt = model.run_branch("mt", model.lm.embed(src), lens, batch["text"], batch["text_lengths"],
                              output_hidden_states=True)
    want = segment(mt.lm_out.hidden_states[1], mt.batch.input_start, lens)
    assert torch.allclose(layers[0], want, atol=1e-5) and len(layers) == 2
    assert torch.allclose(model.text_encode(model.embed_tokens(src), lens)[0], top)


def test_the_task_builds_the_alignment_from_the_registry(tiny_data):
    from salign.llm.task import LLMSTTask, align_choices
    from salign.losses.registry import ALIGN_METHODS
    from tests.llm.test_llm_train import TINY_CONFIG

    assert align_choices.classes is ALIGN_METHODS and {"ot", "multi", "contrastive"} <= set(ALIGN_METHODS)
    tokens = str(tiny_data / "tokens.txt")
    base = ["--config", str(TINY_CONFIG), "--token_list", tokens, "--src_token_list", tokens, "--token_type", "word",
            "--src_token_type", "word", "--input_size", "80"]
    plain = LLMSTTask.build_model(LLMSTTask.get_parser().parse_args(base))
    assert plain.align is None and "forward_count" not in plain.state_dict()
    args = LLMSTTask.get_parser().parse_args(base + ["--align", "ot", "--align_conf", "{layers: [2], weight: 0.5}",
                                                     "--accum_grad", "2"])
    assert "align" not in args.model_conf
    model = LLMSTTask.build_model(args)
    assert isinstance(model.align, OTAlign) and model.align.layers == [2] and model.align.weight == 0.5
    assert model.align.dim == model.lm.hidden_size and model.clock.accum_grad == 2


def test_ot_on_a_lora_hf_lm_trains_only_the_adapters_at_and_below_the_layer(tiny_qwen2):
    model = build_model("hf", tiny_qwen2, finetune="lora", st_weight=0.0, mt_weight=0.0,
                        align=OTAlign(dim=32, layers=[1]))
    model.train()
    loss, _, _ = model(**fake_batch(model))
    loss.sum().backward()
    touched = {n for n, p in model.lm.named_parameters() if p.grad is not None and float(p.grad.abs().sum()) > 0}
    assert touched and all("lora_" in n and ".layers.0." in n for n in touched), sorted(touched)
    assert float(sum(p.grad.abs().sum() for p in model.projector.parameters())) > 0
