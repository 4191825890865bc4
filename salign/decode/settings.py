"""The decoding settings of one decode, taken from ESPnet's ``st_inference`` options (not from a built ``Speech2Text``).

:class:`DecodeSettings` holds what the batched decoder needs to reproduce ESPnet's ``Speech2Text`` search: beam,
weights, length ratios, n-best, dtype and device. It is read from the parsed options once
(:meth:`DecodeSettings.from_args`), so nothing is shared with an ESPnet object that a decode could change.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class DecodeSettings:
    """Beam-search and output settings, with ESPnet's ``Speech2Text`` defaults."""

    beam_size: int = 20
    ctc_weight: float = 0.0
    penalty: float = 0.0  # per-token length bonus (ESPnet's ``length_bonus`` scorer weight)
    nbest: int = 1
    maxlenratio: float = 0.0
    minlenratio: float = 0.0
    # ESPnet's Speech2Text builds its attention BeamSearch without ``normalize_length`` (only its Hugging Face path
    # passes it), so --normalize_length does not change its hypotheses; from_args keeps that (False).
    normalize_length: bool = False
    pre_beam_ratio: float = 1.5
    ctc_greedy: bool = False
    dtype: str = "float32"
    device: str = "cpu"
    token_type: Optional[str] = None  # None: the model's training config decides (as ESPnet)
    bpemodel: Optional[str] = None
    src_token_type: Optional[str] = None
    src_bpemodel: Optional[str] = None
    # options only ESPnet's one-by-one path honours (language models, n-grams, Hugging Face decoder)
    lm_train_config: Optional[str] = None
    ngram_file: Optional[str] = None
    hugging_face_decoder: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "DecodeSettings":
        """The settings given by ESPnet's ``st_inference`` options (``--ngpu >= 1``: CUDA)."""
        return cls(beam_size=args.beam_size, ctc_weight=args.ctc_weight, penalty=args.penalty, nbest=args.nbest,
                   maxlenratio=args.maxlenratio, minlenratio=args.minlenratio, ctc_greedy=args.ctc_greedy,
                   dtype=args.dtype, device="cuda" if args.ngpu >= 1 else "cpu", token_type=args.token_type,
                   bpemodel=args.bpemodel, src_token_type=args.src_token_type, src_bpemodel=args.src_bpemodel,
                   lm_train_config=args.lm_train_config, ngram_file=args.ngram_file,
                   hugging_face_decoder=args.hugging_face_decoder)

    @property
    def torch_dtype(self) -> torch.dtype:
        """``dtype`` as a torch dtype."""
        return getattr(torch, self.dtype)

    def batched_unsupported(self, model: torch.nn.Module) -> Optional[str]:
        """Why the batched decoder cannot decode ``model`` with these settings (None: it can)."""
        if self.lm_train_config is not None or self.ngram_file is not None:
            return "language-model and n-gram scoring are not supported by the batched decoder"
        if getattr(model, "use_multidecoder", False) or getattr(model, "st_use_transducer_decoder", False):
            return "the batched decoder supports attention(-CTC) beam search only"
        if self.hugging_face_decoder and type(model.decoder).__name__ == "HuggingFaceTransformersDecoder":
            return "the batched decoder supports attention(-CTC) beam search only"
        return None
