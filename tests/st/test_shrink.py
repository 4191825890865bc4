"""CTC shrink: which frames are kept, the lengths and the padding mask."""
import torch

from salign.st.shrink import ctc_shrink, frame_tokens


def reference_shrink(feats, lengths, tokens):
    out = []
    for b in range(feats.size(0)):
        n = int(lengths[b])
        keep = [t for t in range(n) if t == 0 or tokens[b, t] != tokens[b, t - 1]]
        out.append((feats[b, keep], tokens[b, keep]))
    return out


def test_hand_example_keeps_first_frame_of_each_run_blank_runs_included():
    tokens = torch.tensor([[1, 1, 0, 0, 2, 2, 2, 0], [3, 3, 3, 4, 9, 9, 9, 9]])
    feats = torch.arange(16, dtype=torch.float32).view(2, 8, 1)
    lengths = torch.tensor([8, 3])
    out = ctc_shrink(feats, lengths, tokens)
    assert out.lengths.tolist() == [4, 1]
    assert out.feats[0, :, 0].tolist() == [0.0, 2.0, 4.0, 7.0]
    assert out.tokens[0].tolist() == [1, 0, 2, 0]
    # second utterance: only its 3 real frames count; padding frames (4, 9, ...) are never kept
    assert out.feats[1, :, 0].tolist() == [8.0, 0.0, 0.0, 0.0]
    assert out.tokens[1].tolist() == [3, -1, -1, -1]


def test_matches_reference_on_random_input():
    torch.manual_seed(0)
    feats = torch.randn(5, 30, 4)
    lengths = torch.tensor([30, 17, 1, 29, 8])
    tokens = torch.randint(0, 3, (5, 30))
    out = ctc_shrink(feats, lengths, tokens)
    for b, (rf, rt) in enumerate(reference_shrink(feats, lengths, tokens)):
        n = len(rt)
        assert int(out.lengths[b]) == n
        assert torch.equal(out.feats[b, :n], rf)
        assert torch.equal(out.tokens[b, :n], rt)
        assert torch.all(out.feats[b, n:] == 0) and torch.all(out.tokens[b, n:] == -1)


def test_gradient_reaches_only_kept_frames():
    feats = torch.randn(1, 6, 2, requires_grad=True)
    tokens = torch.tensor([[5, 5, 6, 6, 6, 7]])
    ctc_shrink(feats, torch.tensor([6]), tokens).feats.sum().backward()
    assert (feats.grad[0, :, 0] != 0).tolist() == [True, False, True, False, False, True]


def test_frame_tokens_argmax_and_sampling():
    logp = torch.log_softmax(torch.tensor([[[0.0, 10.0, 0.0], [10.0, 0.0, 0.0]]]), -1)
    assert frame_tokens(logp, sample=False).tolist() == [[1, 0]]
    torch.manual_seed(0)
    flat = torch.log(torch.tensor([[[0.5, 0.5]]])).expand(1, 2000, 2)
    share = frame_tokens(flat, sample=True).float().mean().item()
    assert 0.4 < share < 0.6  # sampling, not arg-max (which would give 0.0)
