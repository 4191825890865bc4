"""The modal network, gradient ownership of L_D and L_G, the λ schedule, mix-up and text noise."""
import math

import pytest
import torch

from salign.losses.abs_align import AlignBatch
from salign.losses.adversarial import (AdversarialAlign, ModalNetwork, insert_blanks, lambda_schedule,
                                       mix_inputs)

DIM = 8


def make_batch(enc, u=10_000, **extra):
    torch.manual_seed(1)
    xs, xt = torch.randn(3, 7, DIM), torch.randn(3, 5, DIM)
    return AlignBatch(speech=enc(xs), speech_lengths=torch.tensor([7, 4, 2]), text=enc(xt),
                      text_lengths=torch.tensor([5, 5, 3]), num_updates=u, **extra)


def grads(params):
    return [p.grad for p in params]


def test_discriminator_loss_trains_only_the_discriminator():
    enc = torch.nn.Linear(DIM, DIM)
    align = AdversarialAlign(DIM, dropout=0.0)
    b = make_batch(enc)
    loss = align.discriminator_loss([(b.speech, b.speech_lengths, torch.zeros(3)),
                                     (b.text, b.text_lengths, torch.ones(3))])
    loss.backward()
    assert all(g is None for g in grads(enc.parameters())), "L_D must not reach the encoders"
    assert all(g is not None and g.abs().sum() > 0 for g in grads(align.disc.parameters()))


def test_generator_loss_trains_only_the_encoders():
    enc = torch.nn.Linear(DIM, DIM)
    align = AdversarialAlign(DIM, dropout=0.0)
    b = make_batch(enc)
    align.generator_loss([(b.speech, b.speech_lengths), (b.text, b.text_lengths)]).backward()
    assert all(g is None for g in grads(align.disc.parameters())), "no D parameter may get L_G's gradient"
    assert all(g is not None and g.abs().sum() > 0 for g in grads(enc.parameters()))


def test_generator_target_is_one_half():
    align = AdversarialAlign(DIM, dropout=0.0)
    torch.nn.init.zeros_(align.disc.out.weight)  # logit 0 -> D outputs 0.5: L_G is at its minimum ln 2
    h = torch.randn(2, 4, DIM, requires_grad=True)
    loss = align.generator_loss([(h, torch.tensor([4, 2]))])
    assert loss.item() == pytest.approx(math.log(2.0), abs=1e-6)
    loss.backward()
    assert h.grad.abs().max() < 1e-6


def test_full_loss_weights_and_gates():
    enc = torch.nn.Linear(DIM, DIM)
    align = AdversarialAlign(DIM, dropout=0.0, lambda_max=4.0, decay_start=100, decay_end=200, d_scale=1.5,
                             g_start=50, mixup_batch_prob=0.0).eval()
    b = make_batch(enc, u=10)
    loss, st = align(b)
    assert loss.item() == pytest.approx(1.5 * 4.0 * st["loss_adv_d"].item(), rel=1e-5)  # L_G gated off before 50
    b = make_batch(enc, u=150)
    loss, st = align(b)
    lam = 2.0
    assert st["adv_lambda"].item() == pytest.approx(lam)
    assert loss.item() == pytest.approx(1.5 * lam * st["loss_adv_d"].item() + lam * st["loss_adv_g"].item(), rel=1e-5)
    loss, _ = align(make_batch(enc, u=500))
    assert loss.item() == 0.0


def test_lambda_schedule_official_values():
    f = lambda u: lambda_schedule(u, 4.0, 25_000, 45_000)  # noqa: E731
    assert f(0) == 4.0 and f(24_999) == 4.0
    assert f(35_000) == pytest.approx(2.0)
    assert f(45_000) == 0.0 and f(100_000) == 0.0


def test_sentence_level_weights_each_sentence_by_its_length():
    disc = ModalNetwork(DIM, dropout=0.0)
    logits, w = disc(torch.randn(2, 6, DIM), torch.tensor([6, 3]))
    assert logits.shape == (2,) and w.tolist() == [6.0, 3.0]


def test_pooling_ignores_padding():
    disc = ModalNetwork(DIM, dropout=0.0)
    h = torch.randn(1, 6, DIM)
    h2 = h.clone()
    h2[0, 3:] = 1e3  # garbage in padding
    a, _ = disc(h, torch.tensor([3]))
    b, _ = disc(h2, torch.tensor([3]))
    assert torch.allclose(a, b)


@pytest.mark.parametrize("level,shape", [("token", (2, 11)), ("window", (2, 2))])
def test_token_and_window_levels(level, shape):
    disc = ModalNetwork(DIM, dropout=0.0, level=level, window=8, stride=5)
    logits, w = disc(torch.randn(2, 11, DIM), torch.tensor([11, 4]))
    assert logits.shape == shape
    if level == "token":
        assert w[1].tolist() == [1.0] * 4 + [0.0] * 7
    else:
        assert w.tolist() == [[8.0, 6.0], [4.0, 0.0]]


def test_mix_inputs_replaces_only_real_positions_with_scaled_token_embeddings():
    emb = torch.nn.Embedding(10, DIM)
    embed = lambda t: emb(t) * math.sqrt(DIM)  # noqa: E731
    x = torch.randn(3, 6, DIM)
    tokens = torch.tensor([[1, 2, 3, 4, 5, 6], [7, 8, 9, -1, -1, -1], [1, 1, -1, -1, -1, -1]])
    mixed, rep = mix_inputs(x, tokens, torch.tensor([1.0, 0.0, 1.0]), embed)
    assert rep.tolist() == (tokens >= 0).logical_and(torch.tensor([[True], [False], [True]])).tolist()
    assert torch.allclose(mixed[0], embed(tokens[0]))
    assert torch.equal(mixed[1], x[1])
    assert torch.equal(mixed[2, 2:], x[2, 2:])  # padding never replaced
    torch.manual_seed(0)
    _, rep = mix_inputs(torch.randn(1, 4000, DIM), torch.ones(1, 4000, dtype=torch.long), torch.tensor([0.3]), embed)
    assert 0.27 < rep.float().mean().item() < 0.33


def test_mixup_labels_in_range_and_mixed_branch_only_feeds_the_discriminator():
    enc = torch.nn.Linear(DIM, DIM)
    emb = torch.nn.Embedding(10, DIM)
    align = AdversarialAlign(DIM, dropout=0.0, mixup_start=0, mixup_batch_prob=1.0, mixup_p_lo=0.2, mixup_p_hi=0.4)
    b = make_batch(enc, speech_input=torch.randn(3, 7, DIM), speech_tokens=torch.randint(0, 10, (3, 7)),
                   encode=lambda x, n: enc(x), embed=lambda t: emb(t))
    out, p, replaced = align.mixup(b)
    assert torch.all((p >= 0.2) & (p <= 0.4))
    assert not out.requires_grad, "mixed sequences feed only L_D (detached) unless mixup_generator is set"
    loss, st = align(b)
    assert st["mixup"].item() == 1.0
    loss.backward()
    assert emb.weight.grad is None  # no generator gradient through the mixed branch


def test_insert_blanks():
    tok = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [3, 4, -1, -1, -1, -1, -1, -1, -1, -1]])
    out, lengths = insert_blanks(tok, torch.tensor([10, 2]), torch.tensor([0.3, 0.0]), blank_id=0)
    assert lengths.tolist() == [13, 2]
    row = out[0, :13]
    assert (row == 0).sum() == 3 and row[row != 0].tolist() == list(range(5, 15))  # order kept
    assert out[1, :2].tolist() == [3, 4]
