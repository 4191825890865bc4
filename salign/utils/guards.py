"""Training guards: a batch whose loss is not finite is reported by term and contributes no update.

ESPnet's trainer (``espnet2/train/trainer.py``) already refuses an optimizer step when the gradient norm is not
finite, and its reporter leaves non-finite values out of the epoch averages; but it says only "The grad norm is nan"
(not which loss term went wrong), and where its ``GradScaler`` is disabled (``--use_amp true`` without CUDA) that
"skip" calls ``scaler.step(optimizer)``, which then steps the optimizer on the NaN gradients: the parameters and
Adam's moments become NaN for good.

:func:`guard_nonfinite` is called by a model on its total loss (one device sync per batch). When the loss is not
finite it logs one WARNING naming the non-finite terms (``loss_st=nan, loss_adv_d=inf``: the ``loss*`` stats), sets
the stat :data:`SKIP_STAT` to 1 (0 on every other batch, so the epoch mean is the share of skipped batches), and in
training returns a loss that no update can come from:

* on a GPU, or in distributed training, the loss itself: its gradients are not finite, so the trainer skips the step
  (with AMP, ``GradScaler`` skips it and lowers its scale, as for an overflow); every rank skips, since the
  all-reduced gradients are not finite on every rank;
* on a CPU, a zero connected to no parameter: no parameter gets a gradient from the batch, so whatever the trainer
  does next (a step, or ``scaler.step`` of a disabled scaler) leaves the parameters and the optimizer's state as
  they were (gradients of earlier micro-batches of an ``accum_grad`` step still count). The learning-rate scheduler
  counts the batch.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Mapping, Optional, Tuple

import torch

__all__ = ["SKIP_STAT", "guard_nonfinite", "nonfinite_terms"]

#: the stat: 1 for a batch skipped for a non-finite loss, 0 otherwise
SKIP_STAT = "nonfinite_skip"


def nonfinite_terms(stats: Mapping[str, Optional[torch.Tensor]]) -> List[str]:
    """``name=value`` of every scalar ``loss*`` stat that is not finite (the total ``loss`` last)."""
    out = []
    for name, value in stats.items():
        if not name.startswith("loss") or not isinstance(value, torch.Tensor) or value.numel() != 1:
            continue
        v = float(value.detach())
        if v != v or v in (float("inf"), float("-inf")):
            out.append(f"{name}={v}")
    return sorted(out, key=lambda t: t.startswith("loss="))


def _keeps_graph(loss: torch.Tensor) -> bool:
    """Whether the trainer's own skip is safe here (see the module docstring)."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    return loss.device.type == "cuda" or distributed


def guard_nonfinite(loss: torch.Tensor, stats: Dict[str, Optional[torch.Tensor]], training: bool,
                    update: int, where: str = "") -> Tuple[torch.Tensor, Dict[str, Optional[torch.Tensor]]]:
    """``(loss, stats)`` of a batch, guarded: ``stats`` gains :data:`SKIP_STAT`; a non-finite ``loss`` is reported
    (terms by name) and, in training, replaced by one that no update comes from (module docstring)."""
    finite = bool(torch.isfinite(loss.detach()).all())
    stats[SKIP_STAT] = loss.new_tensor(0.0 if finite else 1.0, dtype=torch.float32)
    if finite:
        return loss, stats
    terms = nonfinite_terms({**stats, "loss": loss}) or [f"loss={float(loss.detach())}"]
    what = "batch skipped (no update from it)" if training else "validation batch left out of the averages"
    logging.warning("non-finite loss at update %d%s: %s; %s", update, f" ({where})" if where else "",
                    ", ".join(terms), what)
    if not training or _keeps_graph(loss):
        return loss, stats
    zero = torch.zeros((), dtype=loss.dtype, device=loss.device, requires_grad=True)
    return zero * 1.0, stats  # not a leaf: the trainer divides it in place by accum_grad
