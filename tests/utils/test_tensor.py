"""Generic tensor helpers: length masks, masked mean, a binary classifier's hits."""
import torch

from salign.utils.tensor import binary_hits, length_mask, masked_mean


def test_length_mask():
    assert length_mask(torch.tensor([3, 0, 1]), 4).tolist() == [[True, True, True, False], [False] * 4,
                                                               [True, False, False, False]]
    assert length_mask(torch.tensor([2]), 1).tolist() == [[True]]  # lengths past max_len: all real


def test_masked_mean_ignores_padding_and_empty_rows_give_zeros():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 6.0], [7.0, 7.0], [9.0, 9.0]]])
    out = masked_mean(x, torch.tensor([2, 0]))
    assert out.tolist() == [[2.0, 3.0], [0.0, 0.0]]


def test_binary_hits_counts_real_items_only():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 0.0, 4.0]])
    weights = torch.tensor([[1.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
    correct, counted = binary_hits(logits, weights, positive=True)
    assert (correct.item(), counted.item()) == (1.0, 4.0)  # only 2.0 among the 4 real items is > 0
    correct, counted = binary_hits(logits, weights, positive=False)
    assert (correct.item(), counted.item()) == (3.0, 4.0)  # a logit of exactly 0 predicts the negative class
