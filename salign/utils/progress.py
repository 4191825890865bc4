"""Progress lines with counts and ETA for long loops (feature extraction, corpus generation, decoding).

One line every :data:`FRACTION` of the work (10 %) or every :data:`INTERVAL` seconds, whichever comes first, and one
at the end, on stderr (a job's stderr is its per-job log under the launchers)::

    make_fbank: shard 2/8: 1200/4000 utterances (30%), 5.1 min, ETA 11.9 min

The ETA is the elapsed time scaled by the share left (the rate so far). A loop of unknown length (``total=None``)
reports counts and rate only.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional

__all__ = ["Progress", "format_duration", "FRACTION", "INTERVAL"]

FRACTION = 0.1  # a line at every 10 % of the work
INTERVAL = 60.0  # and at least every minute


def format_duration(seconds: float) -> str:
    """``42 s``, ``5.1 min``, ``2.3 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Progress:
    """Count work done and print a line at each tenth of ``total`` or every ``interval`` seconds, and at the end.

    ``label``: the start of every line (``make_fbank: shard 1/4``); ``unit``: what is counted (``utterances``);
    ``log``: where lines go (stderr by default); ``clock``: for tests.
    """

    def __init__(self, total: Optional[int], label: str, unit: str = "utterances",
                 log: Callable[[str], None] = _stderr, interval: float = INTERVAL, fraction: float = FRACTION,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.label, self.unit = total, label, unit
        self.log, self.interval, self.fraction, self.clock = log, interval, fraction, clock
        self.done = 0
        self.start = self.last = clock()
        self.next_mark = self._mark_after(0)
        self.finished = False

    def _mark_after(self, done: int) -> Optional[int]:
        """The count at which the next tenth is reached (None without a total)."""
        if not self.total:
            return None
        step = max(1, int(self.total * self.fraction))
        return min(self.total, (done // step + 1) * step)

    def update(self, n: int = 1) -> None:
        """``n`` more done; print a line if a tenth was crossed or ``interval`` seconds passed since the last."""
        self.done += n
        now = self.clock()
        crossed = self.next_mark is not None and self.done >= self.next_mark
        if crossed or now - self.last >= self.interval:
            if self.total and self.done >= self.total:
                self.finish()
                return
            self.log(self.line(now))
            self.last = now
            self.next_mark = self._mark_after(self.done)

    def line(self, now: Optional[float] = None) -> str:
        """The progress line as of now."""
        now = self.clock() if now is None else now
        elapsed = now - self.start
        if self.total:
            pct = 100.0 * self.done / self.total
            text = f"{self.label}: {self.done}/{self.total} {self.unit} ({pct:.0f}%), {format_duration(elapsed)}"
            if 0 < self.done < self.total:
                text += f", ETA {format_duration(elapsed * (self.total - self.done) / self.done)}"
            return text
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return f"{self.label}: {self.done} {self.unit}, {format_duration(elapsed)} ({rate:.1f}/s)"

    def finish(self) -> None:
        """The final line (once)."""
        if not self.finished:
            self.finished = True
            self.log(self.line() + (", done" if self.total else ""))
