"""The update clock: how many optimizer updates training has made, for every schedule of the model and its losses.

ESPnet's trainer does not tell the model which update it is in, so the model counts its own training forward passes
and divides by the gradient-accumulation factor::

    u = forward_count // accum_grad        # the n-th training forward sees u = (n - 1) // accum_grad

so the micro-batches of the first update all see update 0. The count is a buffer, so it is saved with every
checkpoint (a resumed run continues its schedules) and broadcast from rank 0 under DDP; ``accum_grad`` is the
trainer's ``--accum_grad``, set by the task when it builds the model (it is not a model option: the same checkpoint
may be trained on with a different accumulation).

The owner keeps the checkpoint key ``forward_count`` of earlier releases: :meth:`UpdateClock.attach` makes the owner's
``state_dict()`` store the counter under ``<prefix>forward_count`` and its ``load_state_dict()`` read it from there.
"""
from __future__ import annotations

import functools
from typing import Any, Dict, List

import torch

#: the counter's key in a checkpoint, relative to the clock's owner (unchanged since the first release)
CHECKPOINT_KEY = "forward_count"


class UpdateClock(torch.nn.Module):
    """Training forward passes (a saved buffer) and the accumulation factor that turns them into updates."""

    def __init__(self, accum_grad: int = 1) -> None:
        """Start at 0 forward passes."""
        super().__init__()
        self.register_buffer("forward_count", torch.zeros((), dtype=torch.long))
        self.accum_grad = accum_grad

    @property
    def num_updates(self) -> int:
        """Optimizer updates made so far: ``forward_count // accum_grad``."""
        return int(self.forward_count.item()) // max(1, self.accum_grad)

    def tick(self) -> None:
        """Count one training forward pass (call it at the end of the forward, after every schedule was read)."""
        self.forward_count += 1

    def attach(self, owner: torch.nn.Module, name: str) -> None:
        """Store this clock's counter in ``owner``'s checkpoints as ``forward_count`` (``name``: its attribute)."""
        inner = f"{name}.{CHECKPOINT_KEY}"
        owner.register_state_dict_post_hook(functools.partial(_to_checkpoint, inner))
        owner.register_load_state_dict_pre_hook(functools.partial(_from_checkpoint, inner))


def _to_checkpoint(inner: str, module: torch.nn.Module, state: Dict[str, Any], prefix: str,
                   local_metadata: Any) -> None:
    """``state_dict`` post-hook: ``<prefix><name>.forward_count`` -> ``<prefix>forward_count``."""
    if prefix + inner in state:
        state[prefix + CHECKPOINT_KEY] = state.pop(prefix + inner)


def _from_checkpoint(inner: str, module: torch.nn.Module, state: Dict[str, Any], prefix: str, local_metadata: Any,
                     strict: bool, missing_keys: List[str], unexpected_keys: List[str], error_msgs: List[str]) -> None:
    """``load_state_dict`` pre-hook: ``<prefix>forward_count`` -> ``<prefix><name>.forward_count``."""
    if prefix + CHECKPOINT_KEY in state:
        state[prefix + inner] = state.pop(prefix + CHECKPOINT_KEY)
