"""Span masking with fairseq's fine-tuning semantics: span counts, span lengths, the overlap, equal counts per batch."""
import math

import pytest
import torch

from salign.st.masking import mask_spans, span_mask


def runs(row: torch.Tensor) -> list:
    """Lengths of the maximal runs of True in a 1-D boolean tensor."""
    out, n = [], 0
    for v in row.tolist() + [False]:
        if v:
            n += 1
        elif n:
            out.append(n)
            n = 0
    return out


def test_span_count_is_prob_times_length_over_span_with_probabilistic_rounding():
    """k = floor(prob·n/span + u): with span 1 (no overlap) the masked count is k itself."""
    torch.manual_seed(0)
    counts = [int(span_mask(torch.tensor([100]), 100, 0.3, 1)[0].sum()) for _ in range(20)]
    assert counts == [30] * 20
    counts = [int(span_mask(torch.tensor([100]), 100, 0.025, 1)[0].sum()) for _ in range(400)]
    assert set(counts) == {2, 3} and 0.4 < counts.count(3) / 400 < 0.6  # 2.5 rounds either way, half the time


def test_min_masks_and_nothing_at_prob_zero():
    torch.manual_seed(0)
    assert int(span_mask(torch.tensor([50]), 50, 0.001, 1, min_masks=2)[0].sum()) == 2
    assert not span_mask(torch.tensor([50]), 50, 0.0, 10, min_masks=2).any()


def test_spans_are_span_long_and_overlap_so_the_masked_share_is_below_prob():
    """Every run of masked frames is at least one span long (spans start before n - span); overlapping spans make
    the masked share about 1 - exp(-prob), not prob."""
    torch.manual_seed(0)
    mask = span_mask(torch.full((8,), 4000), 4000, 0.5, 10, same_count=False)
    assert all(r >= 10 for row in mask for r in runs(row))
    share = mask.float().mean().item()
    assert share == pytest.approx(1 - math.exp(-0.5), abs=0.02) and share < 0.45


def test_only_valid_positions_are_masked_and_every_row_keeps_the_same_count():
    torch.manual_seed(0)
    lengths = torch.tensor([200, 120, 60])
    mask = span_mask(lengths, 200, 0.5, 10, min_masks=2)
    assert not mask[1, 120:].any() and not mask[2, 60:].any()
    counts = mask.sum(1).tolist()
    assert len(set(counts)) == 1 and counts[0] > 0  # fairseq's require_same_masks: the fewest row's count
    free = span_mask(lengths, 200, 0.5, 10, min_masks=2, same_count=False).sum(1).tolist()
    assert free[0] > free[2]


def test_short_row_still_gets_its_spans():
    """Fewer starts than spans: starts from [0, k + 1), spans cut at n (fairseq's guard)."""
    torch.manual_seed(0)
    mask = span_mask(torch.tensor([3]), 3, 0.0001, 10, min_masks=2)
    assert 1 <= int(mask.sum()) <= 3


def test_mask_spans_fills_time_spans_with_the_embedding_and_zeroes_channel_spans():
    torch.manual_seed(0)
    x = torch.randn(2, 40, 16) + 5.0
    emb = torch.nn.Parameter(torch.full((16,), -3.0))
    out = mask_spans(x, torch.tensor([40, 25]), time_prob=0.5, time_span=4, mask_emb=emb)
    timed = (out == -3.0).all(-1)
    assert timed.any() and not timed[1, 25:].any()
    assert torch.equal(out[~timed], x[~timed])
    out.sum().backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0  # the mask embedding learns
    out = mask_spans(x, torch.tensor([40, 25]), channel_prob=0.25, channel_span=2)
    zero = (out == 0).all(1)  # (B, C): channels zero in every frame of the utterance
    assert zero.any() and torch.equal(zero.sum(1), zero.sum(1)[:1].expand(2))
    assert torch.equal(out.masked_fill(zero.unsqueeze(1), 0.0), out) and torch.equal(out[:, :, ~zero[0]][0],
                                                                                     x[0][:, ~zero[0]])


def test_zero_span_length_is_refused():
    with pytest.raises(ValueError, match="span length must be >= 1"):
        span_mask(torch.tensor([10]), 10, 0.5, 0)
