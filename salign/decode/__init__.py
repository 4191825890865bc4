"""Decoding: batched beam search (ST, MT), batched CTC greedy decoding (ASR), the model/data loader, one decode's
runner and the decoding stage's jobs. Names are imported lazily, so light users (key split/merge) skip torch."""
from importlib import import_module
from typing import Any

_NAMES = {
    "BatchBeamSearch": "batch_beam_search", "Hyp": "batch_beam_search", "length_bounds": "batch_beam_search",
    "BatchedDecoder": "decoder", "collapse_ctc": "decoder", "ctc_greedy": "decoder", "length_batches": "decoder",
    "DecodeSettings": "settings",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_NAMES[name]}"), name)
