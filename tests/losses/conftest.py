"""Helpers of the alignment-loss tests."""
from __future__ import annotations

from typing import Callable, List, Tuple

import torch


class StubHost:
    """A small :class:`salign.losses.abs_align.AlignHost`: ``encode`` stands for the textual encoder (applied to the
    whole input, lengths ignored), ``embed`` for the scaled embedding table."""

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor],
                 embed: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.encode, self.embed = encode, embed

    def text_encode(self, x_in: torch.Tensor, lengths: torch.Tensor, return_layers: bool = False
                    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return self.encode(x_in), []

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embed(tokens)
