"""The speech-LLM model: target-only loss, prompts, hidden states per layer, KV-cache decoding, LoRA/frozen/full."""
from __future__ import annotations

import pytest
import torch

from salign.llm.model import IGNORE
from salign.utils.io import InputError
from tests.llm.conftest import build_model, fake_batch

LMS = ["tiny", "qwen2", "llama"]


@pytest.fixture(params=LMS)
def model(request):
    if request.param == "tiny":
        return build_model("tiny")
    path = request.getfixturevalue(f"tiny_{request.param}")
    return build_model("hf", path, finetune="full")


def branch_inputs(model, b):
    enc, lens = model.encode_speech(b["speech"], b["speech_lengths"])
    return model.speech_embeds(enc, lens)


def test_labels_are_the_target_and_eos_after_the_prompt(model):
    b = fake_batch(model)
    emb, lens = branch_inputs(model, b)
    batch = model.assemble("st", emb, lens, b["text"], b["text_lengths"])
    prefix, suffix = model.prompt_ids["st"]
    for i in range(3):
        start = len(prefix) + int(lens[i]) + len(suffix) - 1  # last suffix position predicts the first target
        t = b["text"][i, : int(b["text_lengths"][i])].tolist()
        scored = (batch.labels[i] != IGNORE).nonzero().flatten().tolist()
        assert scored == list(range(start, start + len(t) + 1))
        assert batch.labels[i, scored].tolist() == t + [model.lm.eos_id]
        assert int(batch.input_start[i]) == len(prefix)
        assert torch.equal(batch.embeds[i, len(prefix): len(prefix) + int(lens[i])], emb[i, : int(lens[i])])


def test_only_target_positions_get_gradient_in_the_loss(model):
    """d loss / d logits is zero at every prompt, speech and padding position: scoring any of them turns this red."""
    b = fake_batch(model)
    emb, lens = branch_inputs(model, b)
    kept = {}

    def keep(module, args, out):
        out.logits.retain_grad()
        kept["logits"] = out.logits

    handle = model.lm.register_forward_hook(keep)
    try:
        res = model.run_branch("st", emb, lens, b["text"], b["text_lengths"])
    finally:
        handle.remove()
    res.loss.backward()
    grad = kept["logits"].grad.abs().sum(-1)
    scored = res.batch.labels != IGNORE
    assert bool((grad[~scored] == 0).all())
    assert bool((grad[scored] > 0).all())
    assert int(scored.sum()) == int(b["text_lengths"].sum()) + 3
    # the loss is the mean CE over exactly those positions
    ce = torch.nn.functional.cross_entropy(kept["logits"][scored].detach(), res.batch.labels[scored])
    assert torch.allclose(res.loss.detach(), ce, atol=1e-5)


def test_prompt_and_speech_are_context_only(model):
    """Changing a prompt position's label or the speech frames' content leaves the scored labels as they were and
    changes the loss only through the context."""
    b = fake_batch(model)
    emb, lens = branch_inputs(model, b)
    a = model.run_branch("st", emb, lens, b["text"], b["text_lengths"])
    c = model.run_branch("st", emb + torch.randn_like(emb), lens, b["text"], b["text_lengths"])
    assert torch.equal(a.batch.labels, c.batch.labels)
    assert not torch.allclose(a.loss, c.loss)  # ... while the speech is context the targets depend on
    prefix, _ = model.prompt_ids["st"]
    model.prompt_ids["st"] = ([prefix[0]] * len(prefix), model.prompt_ids["st"][1])  # other prompt tokens
    d = model.run_branch("st", emb, lens, b["text"], b["text_lengths"])
    assert torch.equal(a.batch.labels, d.batch.labels)


def test_forward_reports_each_branch_and_backpropagates(model):
    model.asr_weight = 0.3
    loss, stats, weight = model(**fake_batch(model))
    for key in ("loss_st", "acc_st", "loss_mt", "acc_mt", "loss_asr", "acc", "loss"):
        assert key in stats, key
    loss.backward()
    assert model.projector.linear.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_text_only_batch_trains_the_mt_branch():
    model = build_model("tiny")
    b = fake_batch(model)
    del b["speech"], b["speech_lengths"]
    loss, stats, _ = model(**b)
    assert "loss_st" not in stats and torch.equal(stats["acc"], stats["acc_mt"])


def test_per_layer_hidden_states_locate_both_branches(model):
    b = fake_batch(model)
    emb, lens = branch_inputs(model, b)
    st = model.run_branch("st", emb, lens, b["text"], b["text_lengths"], output_hidden_states=True)
    mt = model.run_branch("mt", model.lm.embed(b["src_text"]), b["src_text_lengths"], b["text"], b["text_lengths"],
                          output_hidden_states=True)
    for res, inputs in ((st, emb), (mt, model.lm.embed(b["src_text"]))):
        hs = res.lm_out.hidden_states
        assert len(hs) == model.lm.num_layers + 1
        for i in range(3):
            s, n = int(res.batch.input_start[i]), int(res.batch.input_lengths[i])
            assert torch.allclose(hs[0][i, s: s + n], inputs[i, :n])  # layer 0 = the input embeddings


@pytest.mark.parametrize("task", ["st", "mt"])
def test_cached_greedy_decoding_matches_full_recomputation_and_padding(model, task):
    model.eval()
    b = fake_batch(model)
    args = ({"src_text": b["src_text"], "src_text_lengths": b["src_text_lengths"]} if task == "mt"
            else {"speech": b["speech"], "speech_lengths": b["speech_lengths"]})
    prompt = model.prompt_inputs(task, **args)
    hyps = model.greedy_search(prompt, max_len=6)
    # no cache: re-run the whole (left-padded) sequence at every step
    emb, mask, pos = prompt.embeds, prompt.mask, prompt.position_ids
    ref = [[] for _ in range(3)]
    done = [False] * 3
    with torch.no_grad():
        for _ in range(6):
            nxt = model.lm(emb, mask, pos).logits[:, -1].argmax(-1)
            for i in range(3):
                if not done[i] and int(nxt[i]) != model.lm.eos_id:
                    ref[i].append(int(nxt[i]))
                done[i] = done[i] or int(nxt[i]) == model.lm.eos_id
            emb = torch.cat([emb, model.lm.embed(nxt[:, None])], 1)
            mask = torch.cat([mask, mask.new_ones(3, 1)], 1)
            pos = torch.cat([pos, pos[:, -1:] + 1], 1)
    assert hyps == ref
    # one utterance alone (no padding) decodes the same as in the left-padded batch
    one = {k: v[1:2] for k, v in args.items()}
    assert model.greedy_search(model.prompt_inputs(task, **one), max_len=6) == [hyps[1]]


def test_lora_trains_adapters_and_leaves_base_weights(tiny_qwen2):
    model = build_model("hf", tiny_qwen2, finetune="lora")
    base = {n: p.detach().clone() for n, p in model.lm.named_parameters() if "lora_" not in n}
    lora = {n: p.detach().clone() for n, p in model.lm.named_parameters() if "lora_" in n}
    assert lora and all(not p.requires_grad for n, p in model.lm.named_parameters() if "lora_" not in n)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    for _ in range(2):
        opt.zero_grad()
        model(**fake_batch(model))[0].backward()
        opt.step()
    after = dict(model.lm.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in base.items())
    assert any(not torch.equal(after[n], v) for n, v in lora.items() if "lora_B" in n)
    assert any(not torch.equal(after[n], v) for n, v in lora.items() if "lora_A" in n)


@pytest.mark.parametrize("finetune,trainable", [("frozen", False), ("full", True)])
def test_frozen_and_full_finetuning(tiny_llama, finetune, trainable):
    model = build_model("hf", tiny_llama, finetune=finetune)
    assert all(p.requires_grad == trainable for p in model.lm.parameters())
    assert all(p.requires_grad for p in model.projector.parameters())
    assert model.lm.bos_ids == [model.lm.tokenizer.bos_token_id]  # Llama's tokenizer adds <s>: so does the prompt


def test_freeze_encoder_keeps_it_out_of_the_graph():
    model = build_model("tiny", freeze_encoder=True)
    loss, _, _ = model(**fake_batch(model))
    loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())


def test_prompts_name_the_task_and_languages(tiny_qwen2):
    hf = build_model("hf", tiny_qwen2, src_lang="en", tgt_lang="es")
    assert hf.prompts["st"].prefix.startswith("Translate the English speech into Spanish.")
    assert "text" in hf.prompts["mt"].prefix and "Transcribe" in hf.prompts["asr"].prefix
    tiny = build_model("tiny", prompts={"st": "<st> <{tgt}> {input} <sep>"})
    words = {i: w for w, i in tiny.lm.extra.items()}
    assert [words[i] for i in tiny.prompt_ids["st"][0]] == ["<st>", "<es>"]
    with pytest.raises(ValueError, match="exactly one"):
        build_model("tiny", prompts={"mt": "<mt> no input"})


def test_missing_local_model_dir_is_one_line_error(tmp_path):
    from salign.llm.hf_lm import HFCausalLM

    with pytest.raises(InputError, match=str(tmp_path / "nope")):
        HFCausalLM(path=str(tmp_path / "nope"))


def test_projector_stacks_frames():
    from salign.llm.projector import MLPProjector

    proj = MLPProjector(4, 8, stack=3, hidden_size=5)
    out, lens = proj(torch.randn(2, 7, 4), torch.tensor([7, 4]))
    assert out.shape == (2, 3, 8) and lens.tolist() == [3, 2]


def test_preencoder_stacks_fbank_frames_before_the_encoder(tiny_data):
    """``--preencoder stack`` (shared with S-Align): the encoder sees k stacked fbank frames (k times wider, k times
    fewer), so its output is about k times shorter."""
    from salign.llm.task import LLMSTTask
    from salign.st.stack import FrameStack
    from tests.llm.test_llm_train import TINY_CONFIG

    tokens = str(tiny_data / "tokens.txt")
    base = ["--config", str(TINY_CONFIG), "--token_list", tokens, "--src_token_list", tokens, "--token_type", "word",
            "--src_token_type", "word", "--input_size", "80"]
    parser = LLMSTTask.get_parser()
    plain = LLMSTTask.build_model(parser.parse_args(base))
    stacked = LLMSTTask.build_model(parser.parse_args(base + ["--preencoder", "stack", "--preencoder_conf",
                                                              "stack=2"]))
    assert isinstance(stacked.preencoder, FrameStack) and plain.preencoder is None
    speech, lengths = torch.randn(2, 96, 80), torch.tensor([96, 60])
    _, plain_lens = plain.encode_speech(speech, lengths)
    _, stacked_lens = stacked.encode_speech(speech, lengths)
    assert stacked_lens.tolist() == plain.encode_speech(speech[:, ::2], (lengths + 1) // 2)[1].tolist()
    assert all(2 * s <= p + 1 for s, p in zip(stacked_lens.tolist(), plain_lens.tolist())), (stacked_lens, plain_lens)


def test_nonfinite_term_is_named_and_its_batch_gives_no_update(caplog, monkeypatch):
    """The training guard of both families (salign/utils/guards.py): a NaN in one term is logged by name and the
    batch's loss carries no gradient to any parameter; finite batches report ``nonfinite_skip`` 0."""
    import logging

    model = build_model("tiny").train()
    b = fake_batch(model)
    _, stats, _ = model(**b)
    assert float(stats["nonfinite_skip"]) == 0.0
    real = model.run_branch

    def poisoned(task, *args, **kw):
        out = real(task, *args, **kw)
        if task == "mt":
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(model, "run_branch", poisoned)
    with caplog.at_level(logging.WARNING):
        loss, stats, _ = model(**b)
    assert float(stats["nonfinite_skip"]) == 1.0 and torch.isfinite(loss)
    assert any("loss_mt=nan" in r.getMessage() for r in caplog.records)
    loss.backward()
    assert all(p.grad is None or not p.grad.abs().sum() for p in model.parameters())
