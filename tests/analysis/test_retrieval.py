"""Retrieval math on synthetic embeddings with known answers, layer selection, and the modality-gap measures."""
import math

import pytest
import torch

from salign.analysis.gap import cosine_stats, linear_cka, pca_2d, rbf_mmd2
from salign.analysis.retrieval import layer_retrieval, recall_at_k, retrieval_ranks, select_top_layers
from salign.utils.io import InputError


def known_case():
    """Queries e_0..e_9. Keys 0-3 are e_i; keys 4-9 are e_{i+1} + 0.5 e_i, so query i >= 5 is beaten by key i-1
    (which points at e_i) and nothing else: ranks [0]*5 + [1]*5."""
    n = 10
    q = torch.eye(n)
    k = torch.eye(n).clone()
    for i in range(4, n):
        k[i] = torch.eye(n)[(i + 1) % n] + 0.5 * torch.eye(n)[i]
    return q, k


def test_ranks_and_recall_known_answer():
    q, k = known_case()
    assert retrieval_ranks(q, k).tolist() == [0] * 5 + [1] * 5
    assert recall_at_k(q, k, ks=(1, 2, 5)) == {"r1": 0.5, "r2": 1.0, "r5": 1.0}
    # cosine: positive rescaling of any vector changes nothing
    scale = torch.rand(10, 1) * 10 + 0.1
    assert recall_at_k(q * scale, k * scale.flip(0)) == {"r1": 0.5, "r5": 1.0}


def test_perfect_and_tied_retrieval():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 8, generator=g)
    assert recall_at_k(x, 3.0 * x) == {"r1": 1.0, "r5": 1.0}
    same = torch.ones(20, 8)  # every key ties with every other: ties count against, so nothing is retrieved
    assert recall_at_k(x, same) == {"r1": 0.0, "r5": 0.0}
    # a random permutation of the keys: R@1 is the fraction of fixed points
    perm = torch.tensor([0, 1, 2] + list(range(4, 20)) + [3])
    assert recall_at_k(x, x[perm])["r1"] == pytest.approx(3 / 20)


def test_layer_retrieval_and_selection():
    q, k = known_case()
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(10, 10, generator=g)
    scores = layer_retrieval([noise, q, q], [q, k, q])  # layer 0 random, 1 half right, 2 perfect
    assert scores[1] == {"r1": 0.5, "r5": 1.0} and scores[2] == {"r1": 1.0, "r5": 1.0}
    layers, weights = select_top_layers(scores, 2, candidates=[1, 2])
    assert layers == [2, 1] and weights == [0.5, 0.5]
    layers, weights = select_top_layers(scores, 2, "r1", candidates=[1, 2])
    assert weights == pytest.approx([2 / 3, 1 / 3])
    # ties on R@1 and R@5 go to the shallower layer
    tie = {1: {"r1": 0.4, "r5": 0.9}, 2: {"r1": 0.4, "r5": 0.9}, 3: {"r1": 0.4, "r5": 0.95}}
    assert select_top_layers(tie, 2)[0] == [3, 1]
    with pytest.raises(InputError, match="top_k"):
        select_top_layers(tie, 4)


def test_cosine_stats_known_answer():
    s = torch.eye(4)
    t = torch.eye(4)
    st = cosine_stats(s, t)
    assert st == {"paired": 1.0, "unpaired": 0.0, "gap": 1.0}
    st = cosine_stats(s, torch.ones(4, 4))
    assert st["paired"] == pytest.approx(0.5) and st["unpaired"] == pytest.approx(0.5) and st["gap"] == 0.0


def test_linear_cka():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 6, generator=g)
    rot, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    assert linear_cka(x, 3.0 * x @ rot + 5.0) == pytest.approx(1.0, abs=1e-9)  # invariant to rotation/scale/shift
    # two 1-d variables: CKA is their squared Pearson correlation
    a = torch.randn(200, 1, generator=g)
    b = 0.6 * a + 0.8 * torch.randn(200, 1, generator=g)
    r = torch.corrcoef(torch.cat([a, b], 1).t())[0, 1].item()
    assert linear_cka(a, b) == pytest.approx(r ** 2, rel=1e-6)
    assert linear_cka(x, torch.randn(50, 6, generator=g)) < 0.5


def test_rbf_mmd():
    value, sigma = rbf_mmd2(torch.tensor([[0.0]]), torch.tensor([[1.0]]), sigma=1.0)
    assert sigma == 1.0 and value == pytest.approx(2.0 - 2.0 * math.exp(-0.5))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g)
    assert rbf_mmd2(x, x)[0] == pytest.approx(0.0, abs=1e-12)
    near = rbf_mmd2(x, torch.randn(40, 3, generator=g))[0]
    far = rbf_mmd2(x, torch.randn(40, 3, generator=g) + 3.0)[0]
    assert 0.0 <= near < far


def test_pca_2d_finds_the_main_directions():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(100, 2, generator=g) * torch.tensor([10.0, 3.0])
    x = torch.cat([z, 0.01 * torch.randn(100, 4, generator=g)], 1)
    p = pca_2d(x)
    assert p.shape == (100, 2)
    assert p[:, 0].var() > p[:, 1].var() > 1.0
    assert abs(torch.corrcoef(torch.stack([p[:, 0], z[:, 0].double()]))[0, 1]) > 0.999
