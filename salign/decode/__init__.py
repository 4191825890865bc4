"""Batched decoding: beam search over many utterances at once (ST, MT) and batched CTC greedy decoding (ASR)."""
from salign.decode.batch_beam_search import BatchBeamSearch, Hyp, length_bounds
from salign.decode.decoder import BatchedDecoder, collapse_ctc, ctc_greedy, length_batches

__all__ = ["BatchBeamSearch", "BatchedDecoder", "Hyp", "collapse_ctc", "ctc_greedy", "length_batches",
           "length_bounds"]
