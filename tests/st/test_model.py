"""The unified model: MT-only batches, stats, padding masks, tying, schedules, the update clock, the alignment host.

Task-level behaviour (building from arguments, --init_from_mt, --lr_scale) is in tests/tasks/test_st.py."""
from __future__ import annotations

import pytest
import torch

from salign.losses.abs_align import AlignHost
from salign.tasks.st import SAlignSTTask
from salign.utils.tensor import length_mask
from tests.conftest import TEST_CONFIG


def build(tiny_data, *extra):
    parser = SAlignSTTask.get_parser()
    args = parser.parse_args(["--config", str(TEST_CONFIG), "--token_type", "word", "--src_token_type", "word",
                              "--token_list", str(tiny_data / "tokens.txt"), "--src_token_list",
                              str(tiny_data / "tokens.txt"), "--input_size", "80", *extra])
    return SAlignSTTask.build_model(args)


def batch(tiny_data, n=4):
    import kaldiio

    from salign.testing.tiny_data import SRC_WORDS, TGT_WORDS  # noqa: F401

    tokens = (tiny_data / "tokens.txt").read_text().split()
    ids = {t: i for i, t in enumerate(tokens)}
    feats = list(kaldiio.load_scp(str(tiny_data / "feats.scp")).items())[:n]
    src = dict(line.split(maxsplit=1) for line in (tiny_data / "src_text").read_text().splitlines())
    tgt = dict(line.split(maxsplit=1) for line in (tiny_data / "text").read_text().splitlines())

    def enc(s):
        return [ids[w] for w in s.split()]

    def pad(seqs, value):
        m = max(len(s) for s in seqs)
        return torch.tensor([list(s) + [value] * (m - len(s)) for s in seqs]), torch.tensor([len(s) for s in seqs])

    speech = [torch.tensor(f) for _, f in feats]
    sl = torch.tensor([len(s) for s in speech])
    sp = torch.nn.utils.rnn.pad_sequence(speech, batch_first=True)
    text, tl = pad([enc(tgt[k]) for k, _ in feats], -1)
    src_text, srl = pad([enc(src[k]) for k, _ in feats], -1)
    return dict(speech=sp, speech_lengths=sl, text=text, text_lengths=tl, src_text=src_text, src_text_lengths=srl)


def test_mt_only_batch_trains_text_side_only(tiny_data):
    model = build(tiny_data).train()
    b = batch(tiny_data)
    loss, stats, weight = model(text=b["text"], text_lengths=b["text_lengths"], src_text=b["src_text"],
                                src_text_lengths=b["src_text_lengths"])
    assert torch.isfinite(loss) and "loss_mt" in stats and "acc_mt" in stats
    assert "loss_st" not in stats and "loss_asr" not in stats and "disc_acc" not in stats
    loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters()), "A-enc must not be touched by MT batches"
    assert all(p.grad is None for p in model.align.parameters())
    assert model.text_encoder.encoders[0].self_attn.linear_q.weight.grad.abs().sum() > 0


def test_full_batch_reports_every_loss(tiny_data):
    model = build(tiny_data).train()
    loss, stats, _ = model(**batch(tiny_data))
    for key in ("loss", "loss_st", "loss_mt", "loss_asr", "acc_st", "acc_mt", "acc", "disc_acc", "loss_align",
                "loss_adv_d", "loss_adv_g", "shrink_ratio"):
        assert key in stats and stats[key] is not None, key
    loss.backward()
    assert model.encoder.encoders[0].self_attn.linear_q.weight.grad.abs().sum() > 0


def test_padding_never_changes_a_shorter_utterance(tiny_data):
    """After CTC shrink the T-enc mask is correct: garbage in padded A-enc frames changes nothing (the official code
    lets attention see padding)."""
    torch.manual_seed(0)  # a random-init CTC whose arg-max shrinks the utterances to different lengths
    model = build(tiny_data).eval()
    b = batch(tiny_data)
    with torch.no_grad():
        aenc, alens = model.encode_speech(b["speech"], b["speech_lengths"])
        i = int(alens.argmin())
        alone_in, alone_len, _ = model.speech_input(aenc[i : i + 1, : alens[i]], alens[i : i + 1])
        alone, _ = model.text_encode(alone_in, alone_len)
        noisy = aenc.clone()
        noisy[i, alens[i]:] = 100.0 * torch.randn_like(noisy[i, alens[i]:])
        x_in, lens, _ = model.speech_input(noisy, alens)
        both, _ = model.text_encode(x_in, lens)
    assert int(lens[i]) == int(alone_len[0]) and lens.max() > lens[i]
    torch.testing.assert_close(both[i, : lens[i]], alone[0], atol=1e-4, rtol=1e-4)


def test_embeddings_are_tied_for_a_joint_vocabulary(tiny_data):
    model = build(tiny_data)
    assert model.decoder.embed[0].weight is model.src_embed.weight
    assert model.decoder.output_layer.weight is model.src_embed.weight
    assert model.ctc.ctc_lo.weight is model.src_embed.weight
    with pytest.raises(ValueError, match="joint vocabulary"):
        # a different source list is a separate vocabulary: tying must be refused
        other = tiny_data / "src_tokens.txt"
        other.write_text((tiny_data / "tokens.txt").read_text().replace("<sos/eos>\n", "X\n<sos/eos>\n"))
        build(tiny_data, "--src_token_list", str(other))


def test_update_counter_respects_accum_grad(tiny_data):
    model = build(tiny_data, "--accum_grad", "2").train()
    b = batch(tiny_data)
    for _ in range(4):
        model(text=b["text"], text_lengths=b["text_lengths"], src_text=b["src_text"],
              src_text_lengths=b["src_text_lengths"])
    assert model.num_updates == 2
    model.eval()
    model(**b)
    assert model.num_updates == 2  # validation does not count




def test_separate_vocabularies_train_without_tying(tiny_data):
    src = tiny_data / "src_only_tokens.txt"
    src.write_text("\n".join(["<blank>", "<unk>", *__import__("salign.testing.tiny_data", fromlist=["x"]).SRC_WORDS,
                              "<sos/eos>"]) + "\n")
    model = build(tiny_data, "--src_token_list", str(src), "--model_conf", "{tie_embeddings: false}").train()
    assert not model.joint_vocab and model.src_embed.num_embeddings == 13
    assert model.ctc.ctc_lo.out_features == 13 and model.decoder.output_layer.out_features == 23
    b = batch(tiny_data)
    ids = {w: i for i, w in enumerate(src.read_text().split())}
    full = (tiny_data / "tokens.txt").read_text().split()
    to_src = torch.tensor([ids.get(w, 1) for w in full])
    b["src_text"] = torch.where(b["src_text"] >= 0, to_src[b["src_text"].clamp(min=0)], b["src_text"])
    loss, stats, _ = model(**b)
    loss.backward()
    assert torch.isfinite(loss) and "loss_st" in stats and "loss_asr" in stats


def test_mixed_precision_forward_backward(tiny_data):
    """Under autocast (bf16 on CPU here; fp16 under ESPnet's --use_amp on GPU) every branch runs and backprops."""
    model = build(tiny_data, "--align_conf", "{mixup_start: 0, mixup_batch_prob: 1.0, g_start: 0}").train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, stats, _ = model(**batch(tiny_data))
    loss.backward()
    assert torch.isfinite(loss) and stats["mixup"].item() == 1.0
    assert model.align.disc.w1.weight.grad is not None








def test_update_clock_keeps_the_checkpoint_key_forward_count(tiny_data):
    """The clock is an object (model.clock) but checkpoints keep the key `forward_count` of earlier releases: saved
    under it, loaded from it (strictly), also under a wrapper's prefix (DDP's `module.`)."""
    model = build(tiny_data, "--accum_grad", "2")
    model.clock.forward_count.fill_(7)
    state = model.state_dict()
    assert int(state["forward_count"]) == 7 and not any(k.startswith("clock.") for k in state)
    other = build(tiny_data, "--accum_grad", "2")
    other.load_state_dict(state)  # strict
    assert int(other.clock.forward_count) == 7 and other.num_updates == 3
    wrapped = torch.nn.ModuleDict({"module": other})
    assert "module.forward_count" in wrapped.state_dict()
    wrapped.load_state_dict({**wrapped.state_dict(), "module.forward_count": torch.tensor(9)})
    assert int(other.clock.forward_count) == 9
    assert "clock.forward_count" in dict(other.named_buffers())  # DDP broadcasts it with the other buffers


def test_alignment_methods_call_back_through_the_model_as_host(tiny_data):
    model = build(tiny_data).train()
    assert isinstance(model, AlignHost)
    seen = []
    model.align.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    model(**batch(tiny_data))
    (align_batch,) = seen
    assert align_batch.host is model and align_batch.num_updates == 0
    out, layers = align_batch.host.text_encode(align_batch.speech_input, align_batch.speech_lengths)
    assert out.shape == align_batch.speech.shape and layers == []


def test_update_clock_starts_at_zero(tiny_data):
    """The first optimizer update is update 0 for every one of its micro-batches (accum_grad 2: 0, 0, 1, 1)."""
    model = build(tiny_data, "--accum_grad", "2", "--model_conf", "st_start=1").train()
    b = batch(tiny_data)
    seen = []
    for _ in range(4):
        _, stats, _ = model(**b)
        seen.append("loss_st" in stats)
    assert seen == [False, False, True, True]


def mt_pretrained(tiny_data, *extra, steps: int = 20):
    """A tiny model after ``steps`` Adam updates on MT-only batches (as MT pre-training leaves it): its MT accuracy and
    its ST accuracy are both well above 0 and differ. The update clock is reset to 0."""
    torch.manual_seed(0)
    model = build(tiny_data, *extra).train()
    b = batch(tiny_data)
    mt = {k: b[k] for k in ("text", "text_lengths", "src_text", "src_text_lengths")}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss, _, _ = model(**mt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.clock.forward_count.fill_(0)
    return model, b


def test_st_loss_off_before_st_start_but_acc_is_always_st(tiny_data):
    """Before st_start the ST loss is off; `acc` (checkpoint selection) is 0 then, never the MT accuracy nor the
    untrained ST one; after it, `acc` is the ST accuracy. Validation reports the real ST accuracy as acc_st. The model
    is MT-trained, so that reporting its MT (or ST) accuracy instead of 0 shows."""
    model, b = mt_pretrained(tiny_data, "--model_conf", "st_start=5")
    _, stats, _ = model(**b)
    assert stats["acc_mt"].item() > 0.3, "the test needs a model whose MT accuracy is not 0"
    assert "loss_st" not in stats and stats["acc"].item() == 0.0
    model.eval()
    with torch.no_grad():
        _, stats, _ = model(**b)
    assert stats["acc_mt"].item() > 0.3 and stats["acc_st"].item() > 0.1, "the test needs non-zero accuracies"
    assert stats["acc"].item() == 0.0
    model.clock.forward_count.fill_(5)
    with torch.no_grad():
        _, stats, _ = model(**b)
    assert stats["acc_st"].item() != stats["acc_mt"].item()
    assert stats["acc"].item() == stats["acc_st"].item()
    _, stats, _ = model(text=b["text"], text_lengths=b["text_lengths"], src_text=b["src_text"],
                        src_text_lengths=b["src_text_lengths"])
    assert stats["acc"].item() == stats["acc_mt"].item()  # MT pre-training selects on MT accuracy


def test_full_config_no_checkpoint_before_st_start_can_win(tiny_data):
    """conf/train_st_salign.yaml (official schedules): a validation before st_start reports acc 0, so ESPnet's
    best/average selection on valid.acc cannot pick a checkpoint whose ST path was never trained."""
    import yaml

    from tests.conftest import REPO

    full = REPO / "conf" / "train_st_salign.yaml"
    st_start = yaml.safe_load(full.read_text())["model_conf"]["st_start"]
    assert st_start > 0 and "acc" in [c[1] for c in yaml.safe_load(full.read_text())["best_model_criterion"]]
    model = build(tiny_data, "--config", str(full)).eval()
    b = batch(tiny_data, n=2)
    for u, trained in ((0, False), (st_start - 1, False), (st_start, True)):
        model.clock.forward_count.fill_(u * model.clock.accum_grad)
        with torch.no_grad():
            _, stats, _ = model(**b)
        assert (stats["acc"].item() == stats["acc_st"].item()) if trained else stats["acc"].item() == 0.0


def test_ctc_weight_schedule(tiny_data):
    """CTC(transcript | speech): L_ST's share (asr_weight) from st_start, plus L_ASR (asr_task_weight) until
    asr_stop."""
    model = build(tiny_data, "--model_conf", "st_start=3000", "--model_conf", "asr_weight=0.3",
                  "--model_conf", "asr_task_weight=1.0", "--model_conf", "asr_stop=15000")
    assert [model.ctc_weight_at(u) for u in (0, 2999, 3000, 14999, 15000)] == pytest.approx([1.0, 1.0, 1.3, 1.3, 0.3])
    model = build(tiny_data, "--model_conf", "st_start=1", "--model_conf", "asr_weight=0.3").train()
    _, stats, _ = model(**batch(tiny_data))
    assert "loss_asr" not in stats  # update 0: neither term is on


def test_shrink_starts_at_shrink_start(tiny_data):
    torch.manual_seed(0)
    model = build(tiny_data, "--model_conf", "shrink=true", "--model_conf", "shrink_start=1").eval()
    flat_ctc(model, strength=5.0)  # one token most of the time: a shrink shows (a random CTC may draw no repeat)
    b = batch(tiny_data)
    with torch.no_grad():
        _, lens = model.encode(b["speech"], b["speech_lengths"])
        _, alens = model.encode_speech(b["speech"], b["speech_lengths"])
    assert torch.equal(lens, alens)  # validation before shrink_start: no shrink either (no train/eval mismatch)
    model.train()
    _, stats, _ = model(**b)
    assert stats["shrink_ratio"].item() == 1.0  # update 0: every A-enc frame reaches T-enc
    _, stats, _ = model(**b)
    assert stats["shrink_ratio"].item() < 1.0


def flat_ctc(model, favourite: int = 3, strength: float = 0.5) -> None:
    """Make every frame's CTC distribution softmax(bias), the same for every frame: the token ``favourite`` has logit
    ``strength``, every other 0 (0.5: nearly uniform with one arg-max). The projection is tied to the embedding table:
    zeroing it is fine for what these tests read."""
    with torch.no_grad():
        model.ctc.ctc_lo.weight.zero_()
        model.ctc.ctc_lo.bias.zero_()
        model.ctc.ctc_lo.bias[favourite] = strength


def test_shrink_samples_ctc_tokens_in_training_and_takes_the_arg_max_in_evaluation(tiny_data):
    """Official: the shrink keeps a frame when its CTC token differs from the previous frame's, the token sampled
    from the CTC distribution in training and its arg-max in evaluation. With a flat CTC distribution and one arg-max
    token, evaluation collapses every utterance to one position while training keeps most frames."""
    torch.manual_seed(0)
    model = build(tiny_data, "--model_conf", "shrink_start=0")
    flat_ctc(model)
    b = batch(tiny_data)
    model.eval()
    with torch.no_grad():
        _, lens = model.encode(b["speech"], b["speech_lengths"])
        _, alens = model.encode_speech(b["speech"], b["speech_lengths"])
    assert lens.tolist() == [1] * len(lens) and alens.min() > 5  # arg-max: one run of the favourite token
    model.train()
    _, stats, _ = model(**b)
    assert stats["shrink_ratio"].item() > 0.7  # sampled: neighbouring frames rarely draw the same token
    with torch.no_grad():
        aenc, alens = model.encode_speech(b["speech"], b["speech_lengths"])
        _, _, tokens = model.speech_input(aenc, alens)
    assert (tokens[tokens >= 0] != 3).float().mean() > 0.7


def test_shrunk_speech_is_layer_normalised_before_the_textual_encoder(tiny_data):
    """Official: LayerNorm after the shrink. Each real position of the textual encoder's speech input has the mean
    and standard deviation over its channels that the norm's affine parameters set."""
    torch.manual_seed(0)
    model = build(tiny_data, "--model_conf", "shrink_start=0").eval()
    with torch.no_grad():
        model.speech_norm.weight.fill_(2.0)
        model.speech_norm.bias.fill_(3.0)
        b = batch(tiny_data)
        aenc, alens = model.encode_speech(b["speech"], b["speech_lengths"])
        x, lens, _ = model.speech_input(7.0 * aenc + 1.0, alens)
    real = x[length_mask(lens, x.size(1))]
    assert real.size(0) == int(lens.sum()) and lens.max() < alens.max()  # shrunk
    torch.testing.assert_close(real.mean(-1), torch.full((real.size(0),), 3.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(real.std(-1, unbiased=False), torch.full((real.size(0),), 2.0), atol=1e-3, rtol=0)


def test_acoustic_front_end_frozen_for_the_first_updates(tiny_data):
    model = build(tiny_data, "--model_conf", "freeze_encoder_updates=1").train()
    b = batch(tiny_data)
    loss, _, _ = model(**b)
    loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters()), "A-enc frozen at update 0"
    assert model.text_encoder.encoders[0].self_attn.linear_q.weight.grad.abs().sum() > 0
    model.zero_grad()
    loss, _, _ = model(**b)  # update 1
    loss.backward()
    assert model.encoder.encoders[0].self_attn.linear_q.weight.grad.abs().sum() > 0
