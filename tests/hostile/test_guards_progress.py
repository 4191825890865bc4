"""Progress on long loops (issue 13, item 5): :class:`salign.utils.progress.Progress` prints counts and ETA at every
tenth of the work or every ``interval`` seconds, and once at the end (feature extraction, corpus generation and
decoding use it; their CLI tests check the lines in the per-job logs)."""
from __future__ import annotations

from salign.utils.progress import Progress, format_duration


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_line_per_tenth_with_eta_and_one_at_the_end():
    lines, clock = [], Clock()
    p = Progress(100, "job 1/2", log=lines.append, clock=clock)
    for _ in range(100):
        clock.t += 1.0
        p.update()
    p.finish()
    assert len(lines) == 10
    assert lines[0] == "job 1/2: 10/100 utterances (10%), 10 s, ETA 1.5 min"
    assert lines[4] == "job 1/2: 50/100 utterances (50%), 50 s, ETA 50 s"
    assert lines[-1] == "job 1/2: 100/100 utterances (100%), 1.7 min, done"


def test_a_slow_loop_reports_every_interval_too():
    lines, clock = [], Clock()
    p = Progress(1000, "decode", unit="sentences", log=lines.append, interval=60, clock=clock)
    for _ in range(30):  # 3 % of the work in 150 s: no tenth crossed, two lines from the interval
        clock.t += 5.0
        p.update()
    assert lines == ["decode: 12/1000 sentences (1%), 60 s, ETA 82.3 min",
                     "decode: 24/1000 sentences (2%), 2.0 min, ETA 81.3 min"]


def test_batches_of_work_and_an_unknown_total():
    lines, clock = [], Clock()
    p = Progress(20, "synthesis", log=lines.append, clock=clock)
    clock.t = 30.0
    p.update(7)  # one talk of 7 utterances crosses three tenths: one line
    assert lines == ["synthesis: 7/20 utterances (35%), 30 s, ETA 56 s"]
    q = Progress(None, "stream", log=lines.append, interval=10, clock=clock)
    clock.t += 20.0
    q.update(40)
    assert lines[-1] == "stream: 40 utterances, 20 s (2.0/s)"
    assert format_duration(5400) == "1.5 h" and format_duration(300) == "5.0 min"
