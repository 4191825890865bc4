"""What the pre-trained acoustic encoders (HuBERT / wav2vec 2.0, Whisper) share: an optional Linear from the
backbone's width to ``output_size``, and ``backbone_frozen()`` -- the backbone under no-grad while the projection
trains (S-Align's ``freeze_encoder_updates``)."""
from __future__ import annotations

import contextlib
from typing import ContextManager, Iterator, Optional

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder


class PretrainedEncoder(AbsEncoder):
    """Base of the encoders built from a pre-trained backbone; subclasses call :meth:`init_projection`."""

    def init_projection(self, width: int, output_size: Optional[int]) -> None:
        """``proj``: Linear(width, output_size) when ``output_size`` is given and differs from ``width``."""
        self._output_size = output_size or width
        self.proj = torch.nn.Linear(width, output_size) if output_size and output_size != width else None
        self._backbone_frozen = False

    @contextlib.contextmanager
    def backbone_frozen(self) -> Iterator[None]:
        """Within this context the backbone runs under no-grad; the projection to ``output_size`` still trains."""
        self._backbone_frozen = True
        try:
            yield
        finally:
            self._backbone_frozen = False

    def backbone_grad(self) -> ContextManager:
        """The grad mode the backbone's forward runs in (no-grad inside :meth:`backbone_frozen`)."""
        return torch.no_grad() if self._backbone_frozen else contextlib.nullcontext()

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's output -> ``output_size`` wide (unchanged without a projection)."""
        return self.proj(x) if self.proj is not None else x

    def output_size(self) -> int:
        """Width of the encoder output (``output_size``, else the backbone's width)."""
        return self._output_size
