"""ESPnet's trainer with checkpoints that a crash or a full disk cannot turn into a dead end (both model families).

ESPnet's ``Trainer.run`` writes ``checkpoint.pth`` then ``<N>epoch.pth`` in place with ``torch.save``, resumes from
``checkpoint.pth`` without looking at the epoch files, and averages the n-best epoch files at the end. A disk that
filled (or a crash) while ``<N>epoch.pth`` was written left a complete ``checkpoint.pth`` ("epoch N done") beside a
truncated epoch file: every run after it resumed, trained nothing and died in the averaging with a traceback naming
no file. :class:`SafeTrainer` is that trainer, with

* every file written by :func:`salign.utils.checkpoint.safe_save`: free space checked against the checkpoint's size
  first (a full disk named as such, before writing), written under a temporary name and renamed, so no truncated
  file ever has a real name;
* the resume verified (:meth:`SafeTrainer.resume`): a damaged ``checkpoint.pth`` is one line with the exact fix; the
  epoch file of the epoch it records, missing or damaged, is written again from it (the same weights: ESPnet saves
  one state dict into both);
* the averaging verified (:func:`verified_average_nbest_models`): an n-best epoch file that is damaged or missing is
  named in one line and left out (the average is taken over the usable ones); none usable is one line with the fix.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import logging
from pathlib import Path
from typing import Any, Collection, Dict, Iterator, List, Optional, Sequence, Union
from unittest import mock

import torch
from espnet2.main_funcs import average_nbest_models as espnet_average
from espnet2.train import trainer as espnet_trainer
from espnet2.train.reporter import Reporter
from espnet2.train.trainer import Trainer

from salign.utils.checkpoint import check_model_file, describe_damage, safe_save
from salign.utils.io import InputError

__all__ = ["SafeTrainer", "verified_average_nbest_models", "usable_epochs"]


class _TorchWithSafeSave:
    """``torch`` as ESPnet's trainer and averaging module see it while :class:`SafeTrainer` runs: ``save`` is
    :func:`safe_save`, everything else is torch's own."""

    save = staticmethod(safe_save)

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)


def _nbest_sets(reporter: Reporter, criteria: Sequence[Sequence[str]], nbest: Collection[int]) -> List[int]:
    """The epochs ESPnet's averaging would read: the first max(nbest) of each criterion the reporter has."""
    top = max(nbest)
    epochs: List[int] = []
    for ph, k, m in criteria:
        if reporter.has(ph, k):
            epochs += [e for e in reporter.sort_epochs(ph, k, m)[:top] if e not in epochs]
    return epochs


def usable_epochs(output_dir: Path, reporter: Reporter, criteria: Sequence[Sequence[str]],
                  nbest: Collection[int]) -> Reporter:
    """A copy of ``reporter`` without the epochs whose file is unusable, found as the averaging would meet them:
    each n-best epoch file is checked (:func:`describe_damage`); a bad one is logged in one line and its epoch
    dropped, and the n-best is taken again (the next epoch in line may then be one the trainer removed: named too)."""
    kept = copy.copy(reporter)
    kept.stats = dict(reporter.stats)
    checked: Dict[int, Optional[str]] = {}
    while True:
        bad = []
        for e in _nbest_sets(kept, criteria, nbest):
            if e not in checked:
                checked[e] = describe_damage(output_dir / f"{e}epoch.pth")
            if checked[e] is not None:
                bad.append(e)
        if not bad:
            return kept
        for e in bad:
            logging.warning("%s: %s; left out of the n-best average", output_dir / f"{e}epoch.pth", checked[e])
            kept.stats.pop(e)
        if not kept.stats:
            return kept
        kept.epoch = max(kept.stats)  # Reporter.has() looks at its current epoch


def verified_average_nbest_models(output_dir: Path, reporter: Reporter, best_model_criterion: Sequence[Sequence[str]],
                                  nbest: Union[Collection[int], int], suffix: Optional[str] = None,
                                  use_deepspeed: bool = False) -> None:
    """ESPnet's ``average_nbest_models`` over the usable n-best epoch files only (:func:`usable_epochs`); when not
    one is usable, one line naming the directory and the fix instead of a traceback."""
    nbests = [nbest] if isinstance(nbest, int) else list(nbest) or [1]
    output_dir = Path(output_dir)
    if not any(reporter.has(ph, k) for ph, k, _ in best_model_criterion):
        return  # nothing to average by (ESPnet's own behaviour)
    kept = reporter if use_deepspeed else usable_epochs(output_dir, reporter, best_model_criterion, nbests)
    if not any(kept.has(ph, k) for ph, k, _ in best_model_criterion):
        raise InputError("no usable epoch checkpoint left to average (each n-best one is damaged or missing, named "
                         "above)", output_dir,
                         fix=f"train again from scratch: move {output_dir} away (or delete its checkpoint.pth) and "
                             "run the training (stage 11) again")
    espnet_average.average_nbest_models(output_dir=output_dir, reporter=kept,
                                        best_model_criterion=best_model_criterion, nbest=nbests, suffix=suffix,
                                        use_deepspeed=use_deepspeed)


def _is_main_process() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or \
        torch.distributed.get_rank() == 0


@contextlib.contextmanager
def _safe_files() -> Iterator[None]:
    """While ESPnet's trainer runs: its saves through :func:`safe_save`, its averaging verified."""
    proxy = _TorchWithSafeSave()
    with mock.patch.object(espnet_trainer, "torch", proxy), mock.patch.object(espnet_average, "torch", proxy), \
            mock.patch.object(espnet_trainer, "average_nbest_models", verified_average_nbest_models):
        yield


class SafeTrainer(Trainer):
    """ESPnet's ``Trainer`` with verified resume and averaging and atomic, space-checked saves (module doc)."""

    @staticmethod
    def resume(checkpoint: Union[str, Path], model: torch.nn.Module, reporter: Reporter,
               optimizers: Sequence[torch.optim.Optimizer], schedulers: Sequence[Any], scaler: Any,
               ngpu: int = 0, strict: bool = True) -> None:
        """Check ``checkpoint.pth``, write the epoch file of the epoch it records again if that is missing or
        damaged, then resume as ESPnet does."""
        checkpoint = Path(checkpoint)
        check_model_file(checkpoint, "--resume", fix=f"delete {checkpoint} to train from scratch, or restore it")
        try:
            states = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)
            epoch = int(states["reporter"]["epoch"])
        except (RuntimeError, OSError, KeyError, TypeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise InputError(f"corrupt checkpoint ({first})", checkpoint,
                             fix=f"delete {checkpoint} to train from scratch, or restore it") from None
        epoch_file = checkpoint.parent / f"{epoch}epoch.pth"
        damage = describe_damage(epoch_file) if epoch > 0 else None
        if damage is not None and _is_main_process():
            safe_save(states["model"], epoch_file)
            logging.warning("%s: %s; written again from %s (the same weights: both are saved at the end of epoch "
                            "%d)", epoch_file, damage, checkpoint, epoch)
        del states
        Trainer.resume(checkpoint=checkpoint, model=model, reporter=reporter, optimizers=optimizers,
                       schedulers=schedulers, scaler=scaler, ngpu=ngpu, strict=strict)

    @classmethod
    def run(cls, *args: Any, **kwargs: Any) -> None:
        """ESPnet's ``Trainer.run`` with the files of :func:`_safe_files`."""
        with _safe_files():
            super().run(*args, **kwargs)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """No options of its own (ESPnet's hook)."""
        super().add_arguments(parser)
