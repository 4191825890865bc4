"""Batched log-domain Sinkhorn against POT, the debiased divergence, padding, gradients, layers and layers_file."""
import numpy as np
import ot as pot
import pytest
import torch

from salign.losses.abs_align import AlignBatch
from salign.losses.ot import OTAlign, entropic_ot, sinkhorn_divergence
from tests.losses.conftest import StubHost

DIM = 4


def clouds(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 6, DIM, generator=g, dtype=dtype)
    y = torch.randn(3, 5, DIM, generator=g, dtype=dtype) + 0.5
    xm = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4]).bool()
    ym = torch.tensor([[1] * 5, [1] * 3 + [0] * 2, [1] * 5]).bool()
    return x, xm, y, ym


@pytest.mark.parametrize("cost", ["sqeuclidean", "cosine"])
@pytest.mark.parametrize("eps", [0.5, 1.0])
def test_matches_pot_per_sentence(cost, eps):
    x, xm, y, ym = clouds()
    value, transport = entropic_ot(x, xm, y, ym, epsilon=eps, n_iters=1000, cost=cost)
    for b in range(x.size(0)):
        xs, ys = x[b][xm[b]].numpy(), y[b][ym[b]].numpy()
        m = pot.dist(xs, ys, metric=cost)
        a, bb = np.full(len(xs), 1 / len(xs)), np.full(len(ys), 1 / len(ys))
        plan = pot.sinkhorn(a, bb, m, eps, numItermax=20000, stopThr=1e-13)
        want_transport = pot.sinkhorn2(a, bb, m, eps, numItermax=20000, stopThr=1e-13)
        want_value = (plan * m).sum() + eps * (plan * np.log(plan / np.outer(a, bb))).sum()
        assert transport[b].item() == pytest.approx(float(want_transport), rel=1e-6)
        assert value[b].item() == pytest.approx(float(want_value), rel=1e-6)


def test_debiased_divergence_is_zero_for_identical_sets_and_positive_otherwise():
    x, xm, y, ym = clouds()
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    same, _ = sinkhorn_divergence(x, xm, x, xm, epsilon=0.1, n_iters=300)
    assert same.abs().max() < 1e-6
    # identical *sets* in another order: still 0 (only sentence 0 has all 6 positions real)
    s0, _ = sinkhorn_divergence(x[:1], xm[:1], x[:1, perm], xm[:1], epsilon=0.1, n_iters=300)
    assert abs(s0.item()) < 1e-6
    diff, _ = sinkhorn_divergence(x, xm, y, ym, epsilon=0.1, n_iters=300)
    assert (diff > 1e-2).all()
    raw, _ = sinkhorn_divergence(x, xm, x, xm, epsilon=0.1, n_iters=300, debias=False)
    assert (raw > 1e-3).all(), "plain OT_eps has an entropic floor > 0 on identical sets"


def test_padding_content_and_amount_change_nothing():
    x, xm, y, ym = clouds()
    base, _ = entropic_ot(x, xm, y, ym, epsilon=0.3, n_iters=200)
    xg = x.clone()
    xg[~xm] = 1e3 * torch.randn_like(xg[~xm])
    yp = torch.cat([y, 7.0 * torch.ones(3, 4, DIM, dtype=y.dtype)], 1)
    ymp = torch.cat([ym, torch.zeros(3, 4, dtype=torch.bool)], 1)
    other, _ = entropic_ot(xg, xm, yp, ymp, epsilon=0.3, n_iters=200)
    torch.testing.assert_close(other, base)
    alone, _ = entropic_ot(x[2:, :2], xm[2:, :2], y[2:], ym[2:], epsilon=0.3, n_iters=200)
    torch.testing.assert_close(alone[0], base[2])


def test_envelope_gradient_equals_unrolled_gradient():
    x, xm, y, ym = clouds(seed=3)
    grads = []
    for unroll in (False, True):
        xx = x.clone().requires_grad_(True)
        yy = y.clone().requires_grad_(True)
        d, _ = sinkhorn_divergence(xx, xm, yy, ym, epsilon=0.5, n_iters=300, unroll=unroll)
        d.sum().backward()
        grads.append((xx.grad, yy.grad))
        assert xx.grad[xm].abs().sum() > 0 and yy.grad[ym].abs().sum() > 0
        assert xx.grad[~xm].abs().max() == 0, "padding gets no gradient"
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(grads[0][1], grads[1][1], atol=1e-6, rtol=1e-4)


def test_gradient_matches_finite_differences():
    x, xm, y, ym = clouds(seed=5)
    x = x[:1]
    xm, y, ym = xm[:1], y[:1], ym[:1]
    xx = x.clone().requires_grad_(True)
    sinkhorn_divergence(xx, xm, y, ym, epsilon=0.5, n_iters=500)[0].sum().backward()
    h = 1e-5
    for idx in [(0, 0, 0), (0, 3, 2), (0, 5, 1)]:
        xp, xn = x.clone(), x.clone()
        xp[idx] += h
        xn[idx] -= h
        fd = (sinkhorn_divergence(xp, xm, y, ym, epsilon=0.5, n_iters=500)[0].sum()
              - sinkhorn_divergence(xn, xm, y, ym, epsilon=0.5, n_iters=500)[0].sum()) / (2 * h)
        assert xx.grad[idx].item() == pytest.approx(fd.item(), rel=1e-4, abs=1e-7)


def align_batch(n_layers=2, same=False):
    torch.manual_seed(0)
    s_lens, t_lens = torch.tensor([6, 3]), torch.tensor([4, 4])
    speech_layers = [torch.randn(2, 6, DIM, requires_grad=True) for _ in range(n_layers)]
    text_layers = [torch.randn(2, 4, DIM, requires_grad=True) for _ in range(n_layers)]
    if same:  # the text side is a copy of the speech side (same real positions)
        s_lens = t_lens = torch.tensor([4, 3])
        text_layers = [h[:, :4] for h in speech_layers]
    return AlignBatch(speech=speech_layers[-1], speech_lengths=s_lens, text=text_layers[-1], text_lengths=t_lens,
                      num_updates=100, speech_layers=speech_layers, text_layers=text_layers)


def test_module_weights_layers_and_stats():
    b = align_batch()
    align = OTAlign(DIM, layers=[1, 2], weights=[0.25, 1.0], weight=2.0, cost="sqeuclidean", epsilon=0.5)
    assert align.needs_layers
    loss, st = align(b)
    want = 0.25 * st["ot_l1"] + 1.0 * st["ot_l2"]
    assert st["loss_ot"].item() == pytest.approx(want.item(), rel=1e-6)
    assert loss.item() == pytest.approx(2.0 * want.item(), rel=1e-6)
    loss.backward()
    assert b.speech_layers[0].grad.abs().sum() > 0 and b.text_layers[1].grad.abs().sum() > 0
    only2 = OTAlign(DIM, layers=[2], cost="sqeuclidean", epsilon=0.5)
    assert only2(align_batch())[1]["ot_l2"].item() == pytest.approx(st["ot_l2"].item(), rel=1e-6)
    assert OTAlign(DIM, layers=[1, 2], start=1000)(align_batch())[0].item() == 0.0
    assert OTAlign(DIM, layers=[1, 2])(align_batch(same=True))[0].abs().item() < 1e-5
    with pytest.raises(ValueError, match="returned 2 layers"):
        OTAlign(DIM, layers=[3])(align_batch())


def test_layer_zero_is_the_encoder_input():
    b = align_batch()
    emb = torch.nn.Embedding(10, DIM)
    b.speech_input = torch.randn(2, 6, DIM, requires_grad=True)
    b.text_tokens = torch.tensor([[1, 2, 3, 4], [5, 6, 7, -1]])
    b.host = StubHost(lambda x: x, emb)
    loss, st = OTAlign(DIM, layers=[0])(b)
    loss.backward()
    assert "ot_l0" in st and b.speech_input.grad.abs().sum() > 0 and emb.weight.grad[[1, 5]].abs().sum() > 0


def test_layers_file_overrides_layers(tmp_path):
    f = tmp_path / "layers.yaml"
    f.write_text("layers: [2, 1]\nweights: [0.7, 0.3]\nretrieval: {1: {r1: 0.5, r5: 1.0}}\n")
    align = OTAlign(DIM, layers=[1], layers_file=str(f))
    assert align.layers == [2, 1] and align.weights == [0.7, 0.3]
    f.write_text("layers: [2]\n")
    assert OTAlign(DIM, layers=[1], weights=[1.0], layers_file=str(f)).weights == [1.0]
    with pytest.raises(FileNotFoundError, match="select_layers"):
        OTAlign(DIM, layers_file=str(tmp_path / "missing.yaml"))
    with pytest.raises(Exception, match="epsilon"):
        OTAlign(DIM, epsilon="small")
    f.write_text("weights: [1]\n")
    with pytest.raises(ValueError, match="layers"):
        OTAlign(DIM, layers_file=str(f))
