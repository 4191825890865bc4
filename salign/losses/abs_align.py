"""The contract every alignment method implements (``--align <name>`` in the task).

The model hands an :class:`AlignBatch` to the alignment module once per training forward pass; the module returns
its weighted loss and the statistics to report. Methods that need more than the top textual-encoder outputs (mix-up
re-encodes modified inputs; optimal transport reads inner layers) use the callables and fields of the batch.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch

Stats = Dict[str, Optional[torch.Tensor]]


@dataclass
class AlignBatch:
    """Everything an alignment method may look at, for one batch of (speech, transcript) pairs.

    Shapes: B sentences, S shrunk speech positions, L transcript tokens, D model dimension.
    """

    speech: torch.Tensor  # (B, S, D) top textual-encoder output of the speech branch
    speech_lengths: torch.Tensor  # (B,)
    text: torch.Tensor  # (B, L, D) top textual-encoder output of the transcript branch
    text_lengths: torch.Tensor  # (B,)
    num_updates: int  # optimizer updates so far (for schedules)
    speech_input: Optional[torch.Tensor] = None  # (B, S, D) textual-encoder input of the speech branch
    speech_tokens: Optional[torch.Tensor] = None  # (B, S) CTC token at each shrunk position (-1: padding)
    text_tokens: Optional[torch.Tensor] = None  # (B, L) transcript token ids (-1: padding)
    speech_layers: List[torch.Tensor] = field(default_factory=list)  # per textual-encoder layer, (B, S, D)
    text_layers: List[torch.Tensor] = field(default_factory=list)  # per textual-encoder layer, (B, L, D)
    # textual-encoder input (B, T, D) + lengths -> top output (B, T, D)
    encode: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None
    # token ids (B, T) -> scaled embeddings sqrt(D) * E[ids], the transcript branch's encoder input before positions
    embed: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    blank_id: int = 0


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) boolean mask, True on real positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over time of (B, T, D) counting real positions only."""
    mask = length_mask(lengths, x.size(1)).to(x.dtype).unsqueeze(-1)
    return (x * mask).sum(1) / lengths.clamp(min=1).to(x.dtype).unsqueeze(-1)


class AbsAlign(torch.nn.Module, ABC):
    """Base class of alignment methods."""

    #: set True when the method reads ``speech_layers``/``text_layers`` (costs memory, so only then collected)
    needs_layers: bool = False

    @abstractmethod
    def forward(self, batch: AlignBatch) -> Tuple[torch.Tensor, Stats]:
        """Return (weighted loss to add to the model loss, statistics to report)."""
