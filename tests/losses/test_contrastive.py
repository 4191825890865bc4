"""H-Align InfoNCE: the formula, matched vs shuffled pairs, temperature, symmetry, token level, gradients."""
import math

import pytest
import torch
import torch.nn.functional as F

from salign.losses.abs_align import AlignBatch
from salign.losses.contrastive import ContrastiveAlign, token_scores

DIM = 16


def paired(seed=0, noise=0.3, bsz=6):
    """Speech = per-sentence content + noise, text = the same content + noise (padding filled with garbage)."""
    g = torch.Generator().manual_seed(seed)
    content = torch.randn(bsz, 1, DIM, generator=g) * 2
    s_lens = torch.randint(3, 8, (bsz,), generator=g)
    t_lens = torch.randint(2, 5, (bsz,), generator=g)
    speech = content + noise * torch.randn(bsz, 8, DIM, generator=g)
    text = content + noise * torch.randn(bsz, 5, DIM, generator=g)
    for i in range(bsz):
        speech[i, s_lens[i]:] = 50.0
        text[i, t_lens[i]:] = -50.0
    return speech, s_lens, text, t_lens


def batch(speech, s_lens, text, t_lens, u=10):
    return AlignBatch(speech=speech, speech_lengths=s_lens, text=text, text_lengths=t_lens, num_updates=u)


def reference_sentence_loss(speech, s_lens, text, t_lens, tau, symmetric):
    """Loop-by-loop InfoNCE, written independently of the module."""
    s = [F.normalize(speech[i, : s_lens[i]].mean(0), dim=0) for i in range(len(s_lens))]
    t = [F.normalize(text[i, : t_lens[i]].mean(0), dim=0) for i in range(len(t_lens))]
    n = len(s)

    def one_way(q, k):
        tot = 0.0
        for i in range(n):
            logits = torch.stack([q[i] @ k[j] / tau for j in range(n)])
            tot += -(logits[i] - torch.logsumexp(logits, 0))
        return tot / n

    fwd = one_way(s, t)
    return 0.5 * (fwd + one_way(t, s)) if symmetric else fwd


@pytest.mark.parametrize("symmetric", [False, True])
def test_sentence_loss_matches_the_formula(symmetric):
    sp, sl, tx, tl = paired(noise=1.0)
    align = ContrastiveAlign(DIM, temperature=0.2, symmetric=symmetric, weight=0.5)
    loss, st = align(batch(sp, sl, tx, tl))
    want = reference_sentence_loss(sp, sl, tx, tl, 0.2, symmetric)
    assert st["loss_ctr"].item() == pytest.approx(want.item(), rel=1e-5)
    assert loss.item() == pytest.approx(0.5 * want.item(), rel=1e-5)
    assert ("ctr_acc_rev" in st) == symmetric


@pytest.mark.parametrize("level", ["sentence", "token"])
def test_matched_pairs_beat_shuffled_pairs(level):
    sp, sl, tx, tl = paired()
    align = ContrastiveAlign(DIM, level=level)
    matched, st = align(batch(sp, sl, tx, tl))
    perm = torch.tensor([1, 2, 3, 4, 5, 0])
    shuffled, st_sh = align(batch(sp, sl, tx[perm], tl[perm]))
    assert matched.item() < 0.1 * shuffled.item()
    assert st["ctr_acc"].item() == 1.0 and st_sh["ctr_acc"].item() == 0.0


def test_temperature_behaviour():
    bsz = 5
    # orthonormal sentence vectors, identical on both sides: cos = 1 on the diagonal, 0 elsewhere
    e = torch.eye(DIM)[:bsz].unsqueeze(1).repeat(1, 3, 1)
    lens = torch.full((bsz,), 3)
    losses = {tau: ContrastiveAlign(DIM, temperature=tau)(batch(e, lens, e, lens))[0].item()
              for tau in (1000.0, 1.0, 0.1, 0.01)}
    assert losses[1000.0] == pytest.approx(math.log(bsz), rel=1e-3)  # hot: uniform over the batch
    want = -math.log(math.e / (math.e + bsz - 1))  # tau = 1: logits 1 vs 0
    assert losses[1.0] == pytest.approx(want, rel=1e-5)
    assert losses[1000.0] > losses[1.0] > losses[0.1] > losses[0.01] and losses[0.01] < 1e-6


@pytest.mark.parametrize("level,match", [("sentence", "max"), ("token", "max"), ("token", "soft")])
def test_gradient_reaches_both_branches_not_padding(level, match):
    sp, sl, tx, tl = paired(noise=1.0)
    sp.requires_grad_(True)
    tx.requires_grad_(True)
    loss, _ = ContrastiveAlign(DIM, level=level, token_match=match)(batch(sp, sl, tx, tl))
    loss.backward()
    s_mask = torch.arange(8)[None] < sl[:, None]
    t_mask = torch.arange(5)[None] < tl[:, None]
    assert sp.grad[s_mask].abs().sum() > 0 and tx.grad[t_mask].abs().sum() > 0
    assert sp.grad[~s_mask].abs().max() == 0 and tx.grad[~t_mask].abs().max() == 0


def test_token_scores_max_and_soft():
    q = torch.tensor([[[1.0, 0.0]]])  # one query position
    k = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    lens = torch.tensor([2])  # the third key position is padding
    assert token_scores(q, torch.tensor([1]), k, lens, "max")[0, 0, 0].item() == pytest.approx(1.0)
    w = torch.softmax(torch.tensor([1.0, 0.0]) / 0.5, 0)
    soft = token_scores(q, torch.tensor([1]), k, lens, "soft", attn_temperature=0.5)[0, 0, 0].item()
    assert soft == pytest.approx(w[0].item() * 1.0 + w[1].item() * 0.0, rel=1e-6)


def test_start_gate_and_bad_options():
    sp, sl, tx, tl = paired()
    loss, st = ContrastiveAlign(DIM, start=100)(batch(sp, sl, tx, tl, u=5))
    assert loss.item() == 0.0 and st["loss_ctr"].item() > 0
    with pytest.raises(ValueError, match="level"):
        ContrastiveAlign(DIM, level="frame")
    with pytest.raises(ValueError, match="temperature"):
        ContrastiveAlign(DIM, temperature=0.0)
    with pytest.raises(Exception, match="temperature"):  # a YAML typo fails at build time, not mid-training
        ContrastiveAlign(DIM, temperature="hot")
