"""Batched beam search of the speech-LLM family (salign/llm/decode.py): parity with Hugging Face ``generate``
(greedy, and beam where the two rule sets coincide: no ``<eos>`` among the K best before the length limit), batched
equals one utterance at a time, our tiny LM's greedy reference, and the text of the n-best."""
from __future__ import annotations

from typing import List

import pytest
import torch

from tests.llm.conftest import build_model, fake_batch

N_NEW = 8  # generated tokens (--maxlenratio -8 / max_new_tokens=8)


def spread(model, std: float = 0.5, eos_like: int = -1) -> None:
    """Re-draw the LM's matrices with a larger spread (a random tiny LM at HF's init emits one token forever);
    ``eos_like >= 0``: make ``<eos>``'s output row a slightly stronger copy of that token's, so that greedy paths
    end early."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.lm.model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * std)
        if eos_like >= 0:
            head = model.lm.model.get_output_embeddings().weight
            head[model.lm.eos_id] = 1.2 * head[eos_like]


def hf_model(path, **kw):
    model = build_model("hf", path, finetune="frozen").eval()
    spread(model, **kw)
    return model


def prompts(model, task: str = "st"):
    b = fake_batch(model)
    with torch.no_grad():
        if task == "mt":
            return model.prompt_inputs("mt", src_text=b["src_text"].clamp(min=0),
                                       src_text_lengths=b["src_text_lengths"])
        return model.prompt_inputs(task, b["speech"], b["speech_lengths"])


def strip(seq: List[int], eos: int, pad: int) -> List[int]:
    """Generated ids up to the first ``<eos>``/pad (HF pads ended rows; ours: ``<sos> ... <eos>``)."""
    out = []
    for t in seq:
        if t in (eos, pad):
            break
        out.append(int(t))
    return out


def ours(model, prompt, k: int, **kw):
    from salign.llm.decode import LLMDecoder

    return LLMDecoder(model, beam_size=k, maxlenratio=-N_NEW, nbest=k, **kw).decode_prompts(prompt)


def generate(model, prompt, **kw):
    tok = model.lm.tokenizer
    return model.lm.model.generate(inputs_embeds=prompt.embeds, attention_mask=prompt.mask, do_sample=False,
                                   max_new_tokens=N_NEW, eos_token_id=model.lm.eos_id,
                                   pad_token_id=tok.pad_token_id, **kw)


@pytest.mark.parametrize("family,task,eos_like", [("qwen2", "st", -1), ("llama", "st", -1), ("qwen2", "mt", -1),
                                                  ("qwen2", "st", 15), ("llama", "mt", 25)])
def test_greedy_matches_hf_generate(family, task, eos_like, request):
    model = hf_model(request.getfixturevalue(f"tiny_{family}"), eos_like=eos_like)
    prompt = prompts(model, task)
    eos, pad = model.lm.eos_id, model.lm.tokenizer.pad_token_id
    got = [strip(h[0].yseq[1:], eos, pad) for h in ours(model, prompt, 1)]
    ref = [strip(s, eos, pad) for s in generate(model, prompt, num_beams=1).tolist()]
    assert got == ref
    assert any(len(g) > 0 for g in got)
    if eos_like >= 0:  # the eos-heavy LM really ends some paths early, in both
        assert any(len(g) < N_NEW for g in got)


@pytest.mark.parametrize("family,k,length_penalty,early_stopping",
                         [("qwen2", 3, 1.0, True), ("qwen2", 4, 0.0, False), ("llama", 3, 2.0, "never")])
def test_beam_matches_hf_generate_when_no_eos_enters_early(family, k, length_penalty, early_stopping, request):
    model = hf_model(request.getfixturevalue(f"tiny_{family}"))
    prompt = prompts(model)
    eos, pad = model.lm.eos_id, model.lm.tokenizer.pad_token_id
    hyps = ours(model, prompt, k)
    # the setting in which ESPnet's and HF's beam rules coincide: every hypothesis ran to the length limit
    assert all(len(h.yseq) == N_NEW + 2 for nbest in hyps for h in nbest)
    out = generate(model, prompt, num_beams=k, num_return_sequences=k, length_penalty=length_penalty,
                   early_stopping=early_stopping, output_scores=True, return_dict_in_generate=True)
    ref = [strip(s, eos, pad) for s in out.sequences.tolist()]
    ref_scores = (out.sequences_scores * N_NEW ** length_penalty).tolist()  # HF divides by length ** penalty
    for b, nbest in enumerate(hyps):
        assert [strip(h.yseq[1:], eos, pad) for h in nbest] == ref[b * k:(b + 1) * k]
        assert [h.score for h in nbest] == pytest.approx(ref_scores[b * k:(b + 1) * k], abs=1e-3)


def one_at_a_time_equal(model, prompt, **kw) -> None:
    from salign.llm.decode import LLMDecoder
    from salign.llm.model import LMBatch

    dec = LLMDecoder(model, **kw)
    batched = dec.decode_prompts(prompt)
    for i, nbest in enumerate(batched):
        n = int(prompt.mask[i].sum())
        one = LMBatch(embeds=prompt.embeds[i:i + 1, -n:], mask=prompt.mask[i:i + 1, -n:],
                      position_ids=prompt.position_ids[i:i + 1, -n:], labels=None,
                      input_start=prompt.input_start[i:i + 1] - (prompt.mask.size(1) - n),
                      input_lengths=prompt.input_lengths[i:i + 1])
        alone = dec.decode_prompts(one)[0]
        assert [h.yseq for h in alone] == [h.yseq for h in nbest]
        assert [h.score for h in alone] == pytest.approx([h.score for h in nbest], abs=1e-4)


@pytest.mark.parametrize("kw", [dict(beam_size=3, nbest=3), dict(beam_size=4, penalty=0.5, maxlenratio=2.0,
                                                                   minlenratio=0.2, nbest=2)])
def test_batched_equals_one_at_a_time_tiny_lm(kw):
    model = build_model("tiny").eval()
    one_at_a_time_equal(model, prompts(model), **kw)
    one_at_a_time_equal(model, prompts(model, "mt"), **kw)


def test_batched_equals_one_at_a_time_hf_lm(tiny_qwen2):
    model = hf_model(tiny_qwen2, eos_like=15)
    one_at_a_time_equal(model, prompts(model), beam_size=3, nbest=3, maxlenratio=-N_NEW)


def test_tiny_lm_beam_one_is_the_greedy_reference():
    from salign.llm.decode import LLMDecoder

    model = build_model("tiny").eval()
    lm = model.lm
    head = torch.nn.Linear(lm.hidden_size, lm.vocab_size)  # the reference must not pick prompt rows either
    with torch.no_grad():
        head.weight.copy_(lm.head.weight)
        head.bias.zero_()
        head.bias[len(lm.token_list):] = -1e4
    lm.head = head
    prompt = prompts(model)
    ref = model.greedy_search(prompt, max_len=N_NEW)
    got = LLMDecoder(model, beam_size=1, maxlenratio=-N_NEW).decode_prompts(prompt)
    eos = model.lm.eos_id
    assert [strip(h[0].yseq[1:], eos, -1) for h in got] == ref


def test_tiny_lm_never_emits_prompt_rows():
    model = build_model("tiny").eval()
    with torch.no_grad():  # make the reserved prompt-word rows the most likely outputs
        model.lm.head.weight[len(model.lm.token_list):] *= 50
    from salign.llm.decode import LLMDecoder

    hyps = LLMDecoder(model, beam_size=3, nbest=3, maxlenratio=-5).decode_prompts(prompts(model))
    assert all(t < len(model.lm.token_list) for nbest in hyps for h in nbest for t in h.yseq)


def test_vocab_text(tiny_qwen2):
    from argparse import Namespace

    from salign.llm.decode import LMVocab

    model = hf_model(tiny_qwen2)
    tok = model.lm.tokenizer
    ids = tok("hello world", add_special_tokens=False)["input_ids"]
    eos = model.lm.eos_id
    text, tokens, got, score = LMVocab(model, Namespace()).target([eos] + ids + [eos, eos], -1.5)
    assert got == ids and score == -1.5 and tokens == tok.convert_ids_to_tokens(ids)
    assert text == tok.decode(ids, skip_special_tokens=True)

    tiny = build_model("tiny")
    v = LMVocab(tiny, Namespace(token_type="word", bpemodel=None))
    t_eos = tiny.lm.eos_id
    text, tokens, got, _ = v.target([t_eos, 5, 0, 6, t_eos], 0.0)
    assert got == [5, 6] and tokens == [tiny.lm.token_list[5], tiny.lm.token_list[6]]
    assert text == " ".join(tokens)


def test_speech_encoded_in_chunks_decodes_as_in_one_call(monkeypatch):
    """On a CPU the decoder encodes the speech a few utterances at a time: the same hypotheses as one encoder call
    over the padded batch (each utterance keeps its own frames)."""
    import salign.llm.decode as dec

    model = build_model("tiny").eval()
    b = fake_batch(model)
    speech = [b["speech"][i, : int(n)] for i, n in enumerate(b["speech_lengths"])]
    assert len(speech) > 2
    whole = ours(model, prompts(model), 2)
    results = []
    for chunk in (1, 2, 100):
        monkeypatch.setattr(dec, "CPU_ENCODE_CHUNK", chunk)
        results.append(dec.LLMDecoder(model, beam_size=2, maxlenratio=-N_NEW, nbest=2).st(speech))
    for res in results:
        assert [[list(h.yseq) for h in n] for n in res] == [[list(h.yseq) for h in n] for n in whole]
        assert all(abs(float(a.score) - float(c.score)) < 1e-4 for n, m in zip(res, whole) for a, c in zip(n, m))
