"""The training-batch contract shared by salign's two model families (S-Align and the speech-LLM)."""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, Dict, Optional, Tuple

import torch
from espnet2.train.abs_espnet_model import AbsESPnetModel

Stats = Dict[str, Optional[torch.Tensor]]


class SpeechTextModel(AbsESPnetModel):
    """An ESPnet model trained on (speech, transcript, translation) triples, or on text alone (no ``speech``).

    :meth:`forward` is ESPnet's contract: it checks the batch, cuts the padding beyond each text's longest sequence
    and hands the tensors to :meth:`compute_loss`.
    """

    def forward(
        self,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        speech: Optional[torch.Tensor] = None,
        speech_lengths: Optional[torch.Tensor] = None,
        src_text: Optional[torch.Tensor] = None,
        src_text_lengths: Optional[torch.Tensor] = None,
        **kwargs: Any,
    ) -> Tuple[torch.Tensor, Stats, torch.Tensor]:
        """(loss, stats, weight) of one batch; ``speech`` absent means a text-only (MT) batch."""
        if speech is None and src_text is None:
            raise ValueError("a training batch needs `speech` or `src_text` "
                             "(check --train_data_path_and_name_and_type)")
        text = text[:, : text_lengths.max()]
        if src_text is not None:
            src_text = src_text[:, : src_text_lengths.max()]
        return self.compute_loss(text, text_lengths, speech, speech_lengths, src_text, src_text_lengths,
                                 **self.batch_extras(kwargs))

    def batch_extras(self, fields: Dict[str, Any]) -> Dict[str, Any]:
        """The extra batch fields (beyond text/speech/src_text) :meth:`compute_loss` takes as keywords; none here."""
        return {}

    @abstractmethod
    def compute_loss(self, text: torch.Tensor, text_lengths: torch.Tensor, speech: Optional[torch.Tensor],
                     speech_lengths: Optional[torch.Tensor], src_text: Optional[torch.Tensor],
                     src_text_lengths: Optional[torch.Tensor]) -> Tuple[torch.Tensor, Stats, torch.Tensor]:
        """The model's loss on a checked, trimmed batch."""
