"""Frame stacking pre-encoder (``--preencoder stack``): shapes, lengths, padding, and use through the task."""
from __future__ import annotations

import pytest
import torch

from salign.st.stack import FrameStack
from tests.st.test_model import batch, build


def test_stacks_consecutive_frames_and_rounds_lengths_up():
    x = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    out, lens = FrameStack(input_size=3, stack=2)(x, torch.tensor([5, 3]))
    assert out.shape == (2, 3, 6) and lens.tolist() == [3, 2]
    assert torch.equal(out[0, 0], torch.cat([x[0, 0], x[0, 1]]))
    assert torch.equal(out[0, 2], torch.cat([x[0, 4], torch.zeros(3)]))   # trailing partial group: zero-padded
    assert torch.equal(out[1, 1], torch.cat([x[1, 2], torch.zeros(3)]))   # batch padding past length 3 is zeroed
    assert out[1, 2].abs().sum() == 0


def test_padding_does_not_change_an_utterance():
    torch.manual_seed(0)
    x = torch.randn(1, 7, 4)
    st = FrameStack(input_size=4, stack=3)
    alone, _ = st(x, torch.tensor([7]))
    padded, lens = st(torch.cat([x, torch.randn(1, 5, 4)], dim=1), torch.tensor([7]))
    assert lens.tolist() == [3] and torch.equal(padded[:, :3], alone)


def test_rejects_bad_stack():
    with pytest.raises(ValueError, match="stack"):
        FrameStack(input_size=80, stack=0)


def test_task_builds_and_trains_with_stacking(tiny_data):
    model = build(tiny_data, "--preencoder", "stack", "--preencoder_conf", "stack=3")
    assert isinstance(model.preencoder, FrameStack) and model.preencoder.output_size() == 240
    b = batch(tiny_data)
    enc, enc_lens = model.encode_speech(b["speech"], b["speech_lengths"])[:2]
    plain = build(tiny_data)
    _, plain_lens = plain.encode_speech(b["speech"], b["speech_lengths"])[:2]
    assert (enc_lens < plain_lens).all()
    loss, stats, _ = model(**b)
    loss.backward()
    assert torch.isfinite(loss)
