"""ESPnet training logs (``exp/*/train.log``) read once: per-epoch statistics, wall time, threads, model size.

ESPnet's trainer ends every epoch with one line::

    [host] 2026-01-01 10:01:00,000 (trainer:394) INFO: 1epoch results: [train] loss=1.0, ..., time=1 minute and
    3.5 seconds, total_count=5, [valid] loss=1.0, acc=0.5, time=2 seconds, total_count=1

(on one line). :func:`parse_train_log` turns the log into a :class:`TrainLog`: one :class:`EpochResult` per such line
(the ``name=number`` statistics of each ``[section]``, and the epoch's time spans summed), plus what the job
launcher (``utils/queue/*.sh``) and ESPnet's model summary add around them. ``salign.bin.train_summary`` prints
first -> last epoch per statistic (:func:`summary`); the comparison table (:mod:`salign.analysis.compare`) reports
the wall time and parameter count.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

#: statistics :func:`summary` reports, in this order, when the first and the last epoch both have them
SUMMARY_KEYS = ("loss", "loss_st", "loss_mt", "loss_asr", "acc_st", "acc_mt", "disc_acc")

_RESULTS = "epoch results:"
_EPOCH = re.compile(r"(\d+)epoch results:")
_SECTION = re.compile(r"\[(\w+)\]([^\[]*)")  # a section runs to the next "["
_STAT = re.compile(r"(\w+)=([-0-9.e+]+)")
_UNITS = {"week": 604800.0, "day": 86400.0, "hour": 3600.0, "minute": 60.0, "second": 1.0}
_SPAN = re.compile(r"([0-9.]+) (week|day|hour|minute|second)s?")
_EPOCH_TIME = re.compile(r"\btime=((?:[0-9.]+ (?:weeks?|days?|hours?|minutes?|seconds?)(?:, | and )?)+)")
_STAMP = re.compile(r"^\S*\s*(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")
_ELAPSED = re.compile(r"elapsed time (\d+(?:\.\d+)?) seconds")
_THREADS = re.compile(r"^# Accounting: .*threads=(\d+)", re.M)
_PARAMS = re.compile(r"Total Number of model parameters:\s*([0-9.]+)\s*([KMBG]?)")
_SCALE = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9}


def parse_timespan(text: str) -> float:
    """Seconds in a humanfriendly time span such as ``1 hour, 2 minutes and 3.5 seconds``."""
    return sum(float(n) * _UNITS[u] for n, u in _SPAN.findall(text))


@dataclass
class EpochResult:
    """One ``N epoch results`` line."""

    epoch: Optional[int]  # N (None if the line does not say)
    stats: Dict[str, Dict[str, float]]  # section (train, valid, ...) -> statistic -> value
    seconds: float  # the line's ``time=`` spans summed (train + valid + ...)


@dataclass
class TrainLog:
    """What a training log says, parsed once."""

    epochs: List[EpochResult] = field(default_factory=list)
    elapsed: Optional[float] = None  # the launcher's ``elapsed time N seconds`` footer
    stamp_span: Optional[float] = None  # seconds from the first to the last ESPnet timestamp (2 or more of them)
    threads: Optional[int] = None  # the launcher's ``# Accounting: ... threads=N``
    params: Optional[float] = None  # ESPnet's ``Total Number of model parameters`` (the last one)

    def split_stats(self, split: str = "train") -> List[Dict[str, float]]:
        """Statistics of ``split`` (train or valid) for each epoch line that has that section."""
        return [e.stats[split] for e in self.epochs if split in e.stats]

    def wall_time(self) -> Tuple[Optional[float], bool]:
        """(seconds, exact) of the training run.

        Exact: the launcher's footer of a log that starts at epoch 1, else the span of its ESPnet timestamps. Not
        exact: a resumed run (the log starts after epoch 1), the sum of the epoch times (train + valid) it logs.
        """
        if not self.epochs:
            return None, False
        if self.epochs[0].epoch == 1:
            if self.elapsed is not None:
                return self.elapsed, True
            if self.stamp_span is not None:
                return self.stamp_span, True
        total = sum(e.seconds for e in self.epochs)
        return (total, False) if total > 0 else (None, False)


def parse_epoch_line(line: str) -> EpochResult:
    """One ``N epoch results`` line -> :class:`EpochResult`."""
    m = _EPOCH.search(line)
    body = line.split(_RESULTS, 1)[-1]
    stats = {name: {k: float(v) for k, v in _STAT.findall(part)} for name, part in _SECTION.findall(body)}
    seconds = sum(parse_timespan(t) for t in _EPOCH_TIME.findall(line))
    return EpochResult(int(m.group(1)) if m else None, stats, seconds)


def parse_train_log(text: str) -> TrainLog:
    """Parse the text of a training log."""
    lines = text.splitlines()
    log = TrainLog(epochs=[parse_epoch_line(line) for line in lines if _RESULTS in line])
    m = _ELAPSED.search(text)
    log.elapsed = float(m.group(1)) if m else None
    stamps = [datetime.strptime(s.group(1), "%Y-%m-%d %H:%M:%S") for s in map(_STAMP.match, lines) if s]
    log.stamp_span = (stamps[-1] - stamps[0]).total_seconds() if len(stamps) >= 2 else None
    m = _THREADS.search(text)
    log.threads = int(m.group(1)) if m else None
    found = _PARAMS.findall(text)
    log.params = float(found[-1][0]) * _SCALE[found[-1][1]] if found else None
    return log


def read_train_log(path: Union[str, os.PathLike]) -> Optional[TrainLog]:
    """The parsed log at ``path``, or None when there is no such file (a stage that has not run)."""
    path = Path(path)
    if not path.is_file():
        return None
    return parse_train_log(path.read_text(encoding="utf-8", errors="replace"))


def summary(path: Union[str, os.PathLike]) -> Optional[str]:
    """A few lines for one log: per :data:`SUMMARY_KEYS` statistic, first -> last epoch, for train and valid."""
    path = Path(path)
    log = read_train_log(path)
    if log is None:
        return None
    lines = [f"{path}:"]
    for split in ("train", "valid"):
        stats = log.split_stats(split)
        if not stats:
            continue
        parts = [f"{k} {stats[0][k]:.3f} -> {stats[-1][k]:.3f}" for k in SUMMARY_KEYS
                 if k in stats[0] and k in stats[-1]]
        lines.append(f"  {split} (epoch 1 -> {len(stats)}): " + ", ".join(parts))
    return "\n".join(lines) if len(lines) > 1 else f"{path}: no finished epoch yet"


def summaries(paths: Sequence[Union[str, os.PathLike]]) -> str:
    """:func:`summary` of each log, one after the other; logs that do not exist are left out."""
    return "\n".join(s for s in map(summary, paths) if s)
