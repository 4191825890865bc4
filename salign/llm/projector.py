"""Speech projectors: encoder frames -> stack ``k`` consecutive frames -> map into the LM's embedding space.

``--projector linear|mlp|moe`` (``projector_conf: {stack: k, ...}``). Every projector shares the stacking of its base
class (a trailing partial group is zero-padded; lengths become ``ceil(T / k)``), so the MoE projector of the
code-switch system (:mod:`salign.llm.moe`, ``--projector moe``) plugs in by subclassing :class:`AbsProjector`,
implementing :meth:`AbsProjector.project` and returning its routing losses from :meth:`AbsProjector.aux_losses`.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, Dict, Optional, Tuple

import torch

from salign.st.stack import FrameStack


class AbsProjector(torch.nn.Module):
    """Frame stacking by ``stack``, then :meth:`project` to ``output_size`` (the LM width)."""

    def __init__(self, input_size: int, output_size: int, stack: int = 1) -> None:
        """``input_size``: encoder width; ``output_size``: LM width (both filled in by the task)."""
        super().__init__()
        self.stacker = FrameStack(input_size=input_size, stack=stack)
        self.input_size, self.out_size, self.stack = input_size, output_size, stack

    def output_size(self) -> int:
        """The LM embedding width."""
        return self.out_size

    @abstractmethod
    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T', input_size * stack) -> (B, T', output_size)."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, T, input_size) encoder output and lengths -> (B, ceil(T/k), output_size) and ceil(lengths/k)."""
        x, lengths = self.stacker(x, lengths)
        return self.project(x), lengths

    def aux_losses(self, lang: Optional[torch.Tensor] = None, lang_frames: Optional[torch.Tensor] = None,
                   src_lang: Optional[str] = None
                   ) -> Tuple[Dict[str, Tuple[float, torch.Tensor]], Dict[str, torch.Tensor]]:
        """Auxiliary losses of the last :meth:`forward` as ``name -> (weight, loss)`` and statistics to log; the
        model adds ``weight · loss`` and logs both. ``lang`` (B,) / ``lang_frames`` (B, T'): optional language
        labels from the batch; ``src_lang``: the model's source language. None by default (linear, mlp)."""
        return {}, {}


#: optional batch fields with language labels for a routing projector's language loss (both model families)
LANG_FIELDS = ("lang", "lang_frames")


def lang_extras(fields: Dict[str, Any]) -> Dict[str, Any]:
    """The batch's language-label fields present (``lang`` (B,), ``lang_frames`` (B, T')), for ``compute_loss``."""
    return {k: fields[k] for k in LANG_FIELDS if fields.get(k) is not None}


def add_aux_losses(loss: torch.Tensor, stats: Dict[str, Any], projector: AbsProjector,
                   lang: Optional[torch.Tensor], lang_frames: Optional[torch.Tensor], src_lang: Optional[str]
                   ) -> torch.Tensor:
    """``loss`` plus ``weight · value`` of each of ``projector``'s auxiliary losses of its last forward; their values
    and statistics go into ``stats``."""
    aux, aux_stats = projector.aux_losses(lang=lang, lang_frames=lang_frames, src_lang=src_lang)
    for name, (weight, value) in aux.items():
        loss = loss + weight * value
        stats[name] = value.detach()
    stats.update(aux_stats)
    return loss


class LinearProjector(AbsProjector):
    """One linear map from stacked frames to the LM width."""

    def __init__(self, input_size: int, output_size: int, stack: int = 1) -> None:
        super().__init__(input_size, output_size, stack)
        self.linear = torch.nn.Linear(input_size * stack, output_size)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Linear map."""
        return self.linear(x)


class MLPProjector(AbsProjector):
    """Linear -> activation -> Linear (the LLaVA / SALMONN-style two-layer projector)."""

    def __init__(self, input_size: int, output_size: int, stack: int = 1, hidden_size: int = 0,
                 activation: str = "gelu", dropout: float = 0.0) -> None:
        """``hidden_size`` 0 means ``output_size``; ``activation``: gelu, relu or silu."""
        super().__init__(input_size, output_size, stack)
        acts = {"gelu": torch.nn.GELU, "relu": torch.nn.ReLU, "silu": torch.nn.SiLU}
        if activation not in acts:
            raise ValueError(f"projector_conf.activation {activation!r}: use one of {sorted(acts)}")
        hidden = hidden_size or output_size
        self.net = torch.nn.Sequential(torch.nn.Linear(input_size * stack, hidden), acts[activation](),
                                       torch.nn.Dropout(dropout), torch.nn.Linear(hidden, output_size))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Two-layer MLP."""
        return self.net(x)
