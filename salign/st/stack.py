"""Frame stacking (low frame rate) before the acoustic encoder: ``--preencoder stack``.

Concatenates ``stack`` consecutive feature frames and keeps every ``stack``-th group, so an 80-dim 10 ms fbank
becomes a ``80*stack``-dim sequence at ``10*stack`` ms. Combined with the encoder's own subsampling
(e.g. ``input_layer: conv1d2``) it lowers the frame rate the acoustic and textual encoders see at almost no cost,
where a wider convolutional subsampling (``conv2d``) costs more than it saves on a CPU. A trailing partial group is
zero-padded, so an utterance of ``T`` frames gives ``ceil(T / stack)`` output frames.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from espnet2.asr.preencoder.abs_preencoder import AbsPreEncoder
from typeguard import typechecked


class FrameStack(AbsPreEncoder):
    """Stack ``stack`` consecutive frames into one (stride ``stack``)."""

    @typechecked
    def __init__(self, input_size: Optional[int] = None, stack: int = 2) -> None:
        """``input_size`` is the feature dimension (filled in by the task when omitted); ``stack`` >= 1."""
        super().__init__()
        if stack < 1:
            raise ValueError(f"preencoder_conf.stack must be >= 1, got {stack}")
        if input_size is None:
            raise ValueError("preencoder_conf.input_size is required (the task fills it in from the features)")
        self.input_size, self.stack = input_size, stack

    def forward(self, input: torch.Tensor, input_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D) features and lengths -> (B, ceil(T/stack), D*stack) and ceil(lengths/stack)."""
        b, t, d = input.shape
        k = self.stack
        pad = (-t) % k
        if pad:
            input = torch.nn.functional.pad(input, (0, 0, 0, pad))
        out = input.reshape(b, (t + pad) // k, d * k)
        lens = torch.div(input_lengths + k - 1, k, rounding_mode="floor")
        # frames past an utterance's end inside its last group were padding of the batch: zero them
        if pad or bool((input_lengths % k).any()):
            pos = torch.arange(t + pad, device=input.device).reshape(1, -1, 1)
            valid = (pos < input_lengths.reshape(-1, 1, 1)).reshape(b, (t + pad) // k, k, 1)
            out = (out.reshape(b, -1, k, d) * valid).reshape(b, -1, d * k)
        return out, lens

    def output_size(self) -> int:
        """Feature dimension after stacking."""
        return self.input_size * self.stack
