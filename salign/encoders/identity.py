"""``--encoder identity``: no acoustic encoder of its own -- the features are a pretrained encoder's states already.

With ``--feats_type whisper`` (``egs/TEMPLATE/st.sh`` stage 3) the features are a frozen Whisper encoder's hidden
states, computed once and cached; the speech LLM then needs no encoder trained from scratch: the frames go straight
(after the global mean/variance normalisation the driver adds) to the projector, which stacks and maps them into the
LM's width. The output width is the input's (the features' width, ``--input_size`` from the shape files), so nothing
hard-codes Whisper's size.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder


class IdentityEncoder(AbsEncoder):
    """Pass the (B, T, D) features through, optionally with dropout; ``output_size() == input_size``."""

    def __init__(self, input_size: int, dropout_rate: float = 0.0) -> None:
        """``input_size``: the features' width (the driver passes it); ``dropout_rate``: dropout on the frames."""
        super().__init__()
        if input_size < 1:
            raise ValueError(f"encoder identity: input_size must be >= 1, got {input_size}")
        self._size = int(input_size)
        self.dropout = torch.nn.Dropout(dropout_rate)

    def output_size(self) -> int:
        """The features' width."""
        return self._size

    def forward(self, xs_pad: torch.Tensor, ilens: torch.Tensor, prev_states: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, None]:
        """``(features, lengths, None)``, the padded frames zeroed."""
        mask = (torch.arange(xs_pad.size(1), device=xs_pad.device)[None] < ilens[:, None]).unsqueeze(-1)
        return self.dropout(xs_pad) * mask, ilens, None
