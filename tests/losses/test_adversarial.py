"""The modal network, gradient ownership of L_D and L_G, the λ schedule, mix-up and text noise."""
import math

import pytest
import torch
import torch.nn.functional as F

from salign.losses.abs_align import AlignBatch, AlignHost
from salign.losses.adversarial import (
    ADV_GRAD_SCALES,
    AdversarialAlign,
    ModalNetwork,
    insert_blanks,
    lambda_schedule,
    mix_inputs,
    official_adv_grad_scale,
)
from tests.losses.conftest import StubHost

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
    torch.nn.init.zeros_(align.disc.out.weight)  # logit 0 -> D outputs 0.5: L_G is at its minimum
    h = torch.randn(2, 4, DIM, requires_grad=True)
    loss = align.generator_loss([(h, torch.tensor([4, 2]))])
    assert loss.item() == pytest.approx(math.log(2.0) * (4 + 2) / 2, abs=1e-6)  # length-weighted, / items
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


def test_lambda_decays_from_decay_start_to_decay_end():
    """Two points on either side of the midpoint (where a rising ramp would agree): 3/4 of λ a quarter of the way into
    the decay, 1/4 of it three quarters of the way, also as the module's reported weight."""
    align = AdversarialAlign(DIM, dropout=0.0, lambda_max=4.0, decay_start=25_000, decay_end=45_000,
                             mixup_batch_prob=0.0).eval()
    assert align.weight(25_000) == 4.0
    assert align.weight(30_000) == pytest.approx(3.0) and align.weight(40_000) == pytest.approx(1.0)
    enc = torch.nn.Linear(DIM, DIM)
    lams = [align(make_batch(enc, u=u))[1]["adv_lambda"].item() for u in (25_000, 30_000, 40_000, 44_999)]
    assert lams == pytest.approx([4.0, 3.0, 1.0, 4.0 / 20_000])


@pytest.mark.parametrize("gate", ["g_start", "d_start"])
def test_each_loss_switches_on_exactly_at_its_start_update(gate):
    """L_G (L_D) is off at update g_start - 1 (d_start - 1) and on at g_start (d_start) itself: updates count from 0."""
    enc = torch.nn.Linear(DIM, DIM)
    start = 7
    align = AdversarialAlign(DIM, dropout=0.0, lambda_max=2.0, d_scale=1.5, mixup_batch_prob=0.0,
                             **{"g_start": 0, "d_start": 0, gate: start}).eval()
    for u, on in ((start - 1, False), (start, True)):
        loss, st = align(make_batch(enc, u=u))
        d_part, g_part = 1.5 * 2.0 * st["loss_adv_d"].item(), 2.0 * st["loss_adv_g"].item()
        want = (d_part if gate == "g_start" or on else 0.0) + (g_part if gate == "d_start" or on else 0.0)
        assert loss.item() == pytest.approx(want, rel=1e-6), (u, on)


def test_official_adv_grad_scale_is_one_over_loss_scale_times_sentences_per_gpu():
    assert official_adv_grad_scale() == pytest.approx(1 / (128 * 150 / 8)) == ADV_GRAD_SCALES["official"]
    assert official_adv_grad_scale(loss_scale=512, sentences_per_gpu=20) == pytest.approx(1 / 10240)
    assert ADV_GRAD_SCALES["face_value"] == 1.0 and AdversarialAlign(DIM).adv_grad_scale == 1.0  # default
    assert AdversarialAlign(DIM, adv_grad_scale=0.01).adv_grad_scale == 0.01
    with pytest.raises(ValueError, match="unknown setting 'oficial'.*fix: one of face_value, official"):
        AdversarialAlign(DIM, adv_grad_scale="oficial")
    with pytest.raises(ValueError, match="must be >= 0"):
        AdversarialAlign(DIM, adv_grad_scale=-1.0)


def test_adv_grad_scale_scales_the_encoder_gradient_but_not_what_adam_does_to_the_discriminator():
    """The official setting multiplies L_G's gradient into the encoders by 1/2400; one Adam step on D from the scaled
    L_D moves D exactly as the face-value one (Adam is invariant to the scale of a parameter's gradient)."""
    torch.manual_seed(0)
    enc = torch.nn.Linear(DIM, DIM)
    face = AdversarialAlign(DIM, dropout=0.0, lambda_max=4.0, g_start=0, mixup_batch_prob=0.0)
    official = AdversarialAlign(DIM, dropout=0.0, lambda_max=4.0, g_start=0, mixup_batch_prob=0.0,
                                adv_grad_scale="official")
    official.load_state_dict(face.state_dict())
    moved, enc_grads = [], []
    for align in (face, official):
        enc.zero_grad()
        loss, _ = align(make_batch(enc, u=0))
        loss.backward()
        enc_grads.append(enc.weight.grad.clone())
        before = [p.detach().clone() for p in align.disc.parameters()]
        torch.optim.Adam(align.disc.parameters(), lr=1e-3, eps=1e-12).step()
        moved.append([p.detach() - b for p, b in zip(align.disc.parameters(), before)])
    tiny = 1e-6 * enc_grads[1].abs().max().item()
    torch.testing.assert_close(enc_grads[1], enc_grads[0] / 2400, rtol=1e-4, atol=tiny)
    assert enc_grads[0].abs().sum() > 0
    for a, b in zip(*moved):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-9)


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


def mixing_setup(**conf):
    enc = torch.nn.Linear(DIM, DIM)
    emb = torch.nn.Embedding(10, DIM)
    align = AdversarialAlign(DIM, dropout=0.0, mixup_start=0, mixup_batch_prob=1.0, **conf)
    b = make_batch(enc, speech_input=enc(torch.randn(3, 7, DIM)), speech_tokens=torch.randint(0, 10, (3, 7)),
                   host=StubHost(enc, emb), text_tokens=torch.randint(1, 10, (3, 5)))
    assert isinstance(b.host, AlignHost)
    return enc, emb, align, b


def test_mixed_sequence_replaces_speech_in_both_losses_with_label_p():
    """Official routing: in a mixed batch D sees (mixed, p) and (text, 1) -- no label-0 speech sample -- and L_G
    pushes the same mixed sequence (not the plain speech) to 0.5."""
    enc, emb, align, b = mixing_setup(mixup_p_lo=0.2, mixup_p_hi=0.4)
    torch.manual_seed(5)
    loss, st = align(b)
    torch.manual_seed(5)
    out, p, _ = align.mixup(b)
    assert torch.all((p >= 0.2) & (p <= 0.4))
    ones = torch.ones(3)
    want_d = align.discriminator_loss([(out, b.speech_lengths, p), (b.text, b.text_lengths, ones)])
    want_g = align.generator_loss([(out, b.speech_lengths), (b.text, b.text_lengths)])
    assert st["mixup"].item() == 1.0
    assert st["loss_adv_d"].item() == pytest.approx(want_d.item(), rel=1e-6)
    assert st["loss_adv_g"].item() == pytest.approx(want_g.item(), rel=1e-6)
    plain = align.discriminator_loss([(b.speech, b.speech_lengths, torch.zeros(3)), (b.text, b.text_lengths, ones)])
    assert st["loss_adv_d"].item() != pytest.approx(plain.item(), rel=1e-3)


def test_confusion_gradient_reaches_embeddings_and_encoder_through_the_mixed_input():
    enc, emb, align, b = mixing_setup()
    out, _, _ = align.mixup(b)
    assert out.requires_grad, "the mixed sequence is re-encoded with gradient"
    align.generator_loss([(out, b.speech_lengths)]).backward()
    assert emb.weight.grad is not None and emb.weight.grad.abs().sum() > 0
    assert enc.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in align.disc.parameters())


def test_extra_mode_keeps_speech_and_adds_a_detached_mixed_sample():
    """``mixup_mode: extra`` (earlier salign behaviour): speech keeps label 0, the mixed sequence is an extra
    D-only sample computed without gradient."""
    enc, emb, align, b = mixing_setup(mixup_mode="extra")
    torch.manual_seed(5)
    loss, st = align(b)
    torch.manual_seed(5)
    out, p, _ = align.mixup(b)
    assert not out.requires_grad
    want = align.discriminator_loss([(b.speech, b.speech_lengths, torch.zeros(3)),
                                     (b.text, b.text_lengths, torch.ones(3)), (out, b.speech_lengths, p)])
    assert st["loss_adv_d"].item() == pytest.approx(want.item(), rel=1e-6)
    loss.backward()
    assert emb.weight.grad is None


def test_generator_loss_is_bce_against_one_half():
    """L_G = Σ w·BCE(logit, 0.5) / N for a discriminator with non-zero output: confusion, not label flipping."""
    torch.manual_seed(3)
    align = AdversarialAlign(DIM, dropout=0.0)
    h, lengths = torch.randn(4, 6, DIM), torch.tensor([6, 5, 3, 1])
    logits, w = align.disc(h, lengths)
    assert logits.abs().min() > 1e-3
    want = (w * (F.softplus(logits) - 0.5 * logits)).sum() / 4  # BCE-with-logits against 0.5
    assert align.generator_loss([(h, lengths)]).item() == pytest.approx(want.item(), rel=1e-6)


def test_official_reduction_divides_by_the_number_of_items_not_the_weights():
    torch.manual_seed(4)
    h, lengths, labels = torch.randn(3, 9, DIM), torch.tensor([9, 4, 2]), torch.tensor([0.0, 1.0, 0.3])
    official = AdversarialAlign(DIM, dropout=0.0)
    mean = AdversarialAlign(DIM, dropout=0.0, reduction="weights")
    mean.load_state_dict(official.state_dict())
    logits, w = official.disc(h, lengths)
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    assert official.discriminator_loss([(h, lengths, labels)]).item() == pytest.approx(
        (w * bce).sum().item() / 3, rel=1e-6)
    assert mean.discriminator_loss([(h, lengths, labels)]).item() == pytest.approx(
        ((w * bce).sum() / w.sum()).item(), rel=1e-6)


def test_noised_transcripts_replace_clean_ones_with_label_one_minus_r():
    enc, emb, align, b = mixing_setup(text_noise_prob=1.0, text_noise_max_ratio=0.5)
    align.mixup_batch_prob = 0.0
    torch.manual_seed(7)
    _, st = align(b)
    torch.manual_seed(7)
    torch.rand(3)  # the per-sentence draw
    r = torch.empty(3).uniform_(0.0, 0.5)
    out, lengths = align.text_noise(b, r)
    assert out.requires_grad
    want = align.discriminator_loss([(b.speech, b.speech_lengths, torch.zeros(3)), (out, lengths, 1.0 - r)])
    assert st["text_noised"].item() == 1.0
    assert st["loss_adv_d"].item() == pytest.approx(want.item(), rel=1e-6)


def test_text_noise_is_drawn_per_sentence():
    torch.manual_seed(0)
    enc = torch.nn.Linear(DIM, DIM)
    emb = torch.nn.Embedding(10, DIM)
    align = AdversarialAlign(DIM, dropout=0.0, mixup_batch_prob=0.0, text_noise_prob=0.5)
    n = 64
    b = AlignBatch(speech=enc(torch.randn(n, 7, DIM)), speech_lengths=torch.full((n,), 7),
                   text=enc(torch.randn(n, 5, DIM)), text_lengths=torch.full((n,), 5), num_updates=10_000,
                   text_tokens=torch.randint(1, 10, (n, 5)), host=StubHost(enc, emb))
    shares = [align(b)[1]["text_noised"].item() for _ in range(5)]
    assert all(0.2 < s < 0.8 for s in shares), shares


def test_insert_blanks():
    tok = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [3, 4, -1, -1, -1, -1, -1, -1, -1, -1]])
    out, lengths = insert_blanks(tok, torch.tensor([10, 2]), torch.tensor([0.3, 0.0]), blank_id=0)
    assert lengths.tolist() == [13, 2]
    row = out[0, :13]
    assert (row == 0).sum() == 3 and row[row != 0].tolist() == list(range(5, 15))  # order kept
    assert out[1, :2].tolist() == [3, 4]


@pytest.mark.parametrize("level", ["sentence", "token"])
def test_disc_acc_counts_real_items_of_each_modality(level):
    """disc_acc_speech: share of real speech items D calls speech (logit <= 0); disc_acc_text: text items it calls
    text (logit > 0); disc_acc their mean."""
    torch.manual_seed(2)
    align = AdversarialAlign(DIM, dropout=0.0, level=level, mixup_batch_prob=0.0).eval()
    b = make_batch(torch.nn.Linear(DIM, DIM))
    _, st = align(b)
    with torch.no_grad():
        (ls, ws), (lt, wt) = align.disc(b.speech, b.speech_lengths), align.disc(b.text, b.text_lengths)
    want_s = ((ls <= 0) & (ws > 0)).sum().item() / (ws > 0).sum().item()
    want_t = ((lt > 0) & (wt > 0)).sum().item() / (wt > 0).sum().item()
    assert st["disc_acc_speech"].item() == pytest.approx(want_s)
    assert st["disc_acc_text"].item() == pytest.approx(want_t)
    assert st["disc_acc"].item() == pytest.approx((want_s + want_t) / 2)


def test_mixup_and_text_noise_need_the_host():
    _, _, align, b = mixing_setup()
    b.host = None
    with pytest.raises(ValueError, match="mix-up needs .*host"):
        align.mixup(b)
    with pytest.raises(ValueError, match="text noise needs .*host"):
        align.text_noise(b, torch.full((3,), 0.2))
