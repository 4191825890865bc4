"""The contract every alignment method implements (``--align <name>`` in the task).

The model hands an :class:`AlignBatch` to the alignment module once per training forward pass; the module returns
its weighted loss and the statistics to report. Methods that need more than the top textual-encoder outputs (mix-up
re-encodes modified inputs; optimal transport reads inner layers) use the fields of the batch and call back into the
model through ``batch.host``, an :class:`AlignHost`: the two model operations an alignment method may use.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Protocol, Tuple, runtime_checkable

import torch

Stats = Dict[str, Optional[torch.Tensor]]


@runtime_checkable
class AlignHost(Protocol):
    """What an alignment method may ask of the model (``SAlignSTModel`` implements it; tests use small stand-ins).

    Both operations are the model's own, with gradient (a method that wants none runs them under ``torch.no_grad``).
    """

    def text_encode(self, x_in: torch.Tensor, lengths: torch.Tensor, return_layers: bool = False
                    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """The shared textual encoder on an input sequence of either branch: (B, T, D) textual-encoder input (before
        positions, e.g. the adapted speech or ``sqrt(D)·E[ids]``) + (B,) lengths -> (top output (B, T, D), per-layer
        outputs, empty unless ``return_layers``)."""
        ...

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> ``sqrt(D)·E[ids]``, the transcript branch's textual-encoder input (ids < 0 map to a
        valid row; callers mask by length)."""
        ...


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
    host: Optional[AlignHost] = None  # the model, for methods that re-encode or embed (mix-up, text noise, OT 0)
    blank_id: int = 0


class AbsAlign(torch.nn.Module, ABC):
    """Base class of alignment methods."""

    #: set True when the method reads ``speech_layers``/``text_layers`` (costs memory, so only then collected)
    needs_layers: bool = False

    @abstractmethod
    def forward(self, batch: AlignBatch) -> Tuple[torch.Tensor, Stats]:
        """Return (weighted loss to add to the model loss, statistics to report)."""
