"""What the pre-trained acoustic encoders (HuBERT / wav2vec 2.0, Whisper) share: an optional Linear from the
backbone's width to ``output_size`` followed by a dropout (``proj_dropout``; the official S-Align A-enc has 0.1 after
its 768 -> 512 projection), and ``backbone_frozen()`` -- the backbone under no-grad while the projection trains
(S-Align's ``freeze_encoder_updates``)."""
from __future__ import annotations

import contextlib
from typing import ContextManager, Iterator, Optional

import torch
from espnet2.asr.encoder.abs_encoder import AbsEncoder

from salign.utils.io import InputError


class PretrainedEncoder(AbsEncoder):
    """Base of the encoders built from a pre-trained backbone; subclasses call :meth:`init_projection` and, for the
    input masking of fine-tuning, :meth:`init_masking`."""

    def init_masking(self, mask_prob: float, mask_length: int, mask_channel_prob: float, mask_channel_length: int
                     ) -> None:
        """Check and keep the span-masking knobs (:mod:`salign.st.masking`; applied in training only)."""
        for name, value in (("mask_prob", mask_prob), ("mask_channel_prob", mask_channel_prob)):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"encoder_conf.{name} must be in [0, 1], got {value}",
                                 fix="0.5 (time) / 0.25 (channels) as the official S-Align A-enc, or 0: off")
        for name, value in (("mask_length", mask_length), ("mask_channel_length", mask_channel_length)):
            if value < 1:
                raise InputError(f"encoder_conf.{name} must be >= 1 positions, got {value}", fix="e.g. 10")
        self.mask_prob, self.mask_length = mask_prob, mask_length
        self.mask_channel_prob, self.mask_channel_length = mask_channel_prob, mask_channel_length

    def init_projection(self, width: int, output_size: Optional[int], dropout: float = 0.0) -> None:
        """``proj``: Linear(width, output_size) when ``output_size`` is given and differs from ``width``; then a
        dropout of rate ``dropout`` on the encoder output (with or without the projection)."""
        if not 0.0 <= dropout < 1.0:
            raise InputError(f"encoder_conf.proj_dropout must be in [0, 1), got {dropout}", fix="e.g. 0.1")
        self._output_size = output_size or width
        self.proj = torch.nn.Linear(width, output_size) if output_size and output_size != width else None
        self.proj_dropout = torch.nn.Dropout(dropout)
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
        """The backbone's output -> ``output_size`` wide (unchanged without a projection), then ``proj_dropout``."""
        return self.proj_dropout(self.proj(x) if self.proj is not None else x)

    def output_size(self) -> int:
        """Width of the encoder output (``output_size``, else the backbone's width)."""
        return self._output_size
