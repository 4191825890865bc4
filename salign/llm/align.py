"""AI-STA in its own setting: the alignment losses of :mod:`salign.losses` between the speech and the transcript
segments of the LLM's hidden states.

The speech-LLM model runs the ST branch (``prompt_st <speech frames> ...``) and the MT branch
(``prompt_mt <transcript> ...``) with every LM layer's hidden states; this module cuts each utterance's input
segment out of each layer and packs both branches into the :class:`~salign.losses.abs_align.AlignBatch` the S-Align
model hands to the same losses. Layer numbering is the one ``align_conf.layers`` (and ``select_layers``) use:
``0`` is the LM input (the projected speech frames; the transcript's token embeddings), ``k`` the output of LM
block ``k`` (the last one after the LM's final norm, as Hugging Face reports it). The states are causal, so a
segment's states do not depend on the targets after it: the teacher-forced training run and a prompt-only run
(:func:`branch_states`) give the same values.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch

from salign.utils.tensor import length_mask


def segment(hidden: torch.Tensor, start: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Rows ``hidden[i, start[i] : start[i] + lengths[i]]`` as a right-padded (B, max(lengths), D) tensor (0 on
    padding)."""
    width = int(lengths.max()) if lengths.numel() else 0
    idx = start[:, None] + torch.arange(width, device=hidden.device)[None]
    idx = idx.clamp(max=hidden.size(1) - 1)
    out = hidden.gather(1, idx[:, :, None].expand(-1, -1, hidden.size(-1)))
    return out.masked_fill(~length_mask(lengths, width)[:, :, None], 0.0)


def segment_layers(hidden_states: Sequence[torch.Tensor], start: torch.Tensor, lengths: torch.Tensor
                   ) -> List[torch.Tensor]:
    """:func:`segment` of every entry of an LM's ``hidden_states`` (index 0: the input embeddings)."""
    return [segment(h, start, lengths) for h in hidden_states]


def branch_states(model, task: str, inputs: torch.Tensor, lengths: torch.Tensor
                  ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """The LM run of one branch without targets: (top segment (B, T, D), [segment of block 1 .. block L])."""
    batch = model.assemble(task, inputs, lengths)
    out = model.lm(batch.embeds, batch.mask, batch.position_ids, output_hidden_states=True)
    layers = segment_layers(out.hidden_states, batch.input_start, batch.input_lengths)
    return layers[-1], layers[1:]
