"""Wall time per stage of a recipe run, from the stage driver's log lines (``<time> [st.sh] stage N...``).

    egs/mini_mustc/run.sh 2>&1 | tee run.log;  python benchmarks/recipe_stages.py run.log

Prints a Markdown table: stage, what it did (first log line), seconds, share of the total.
"""
from __future__ import annotations

import re
import sys
from datetime import datetime
from typing import List, Optional, Sequence, Tuple

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) \[st\.sh\] (stage \d+[ab]?|done)(:?)(.*)$")


def stage_times(lines: Sequence[str]) -> List[Tuple[str, str, float]]:
    """(stage, description, seconds) per stage, in order; consecutive lines of one stage are merged."""
    marks = []
    for line in lines:
        m = LINE.match(line.strip())
        if m:
            marks.append((datetime.fromisoformat(m.group(1)), m.group(2), m.group(4).strip()))
    out: List[Tuple[str, str, float]] = []
    for (t0, name, what), (t1, _, _) in zip(marks, marks[1:]):
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1], out[-1][2] + (t1 - t0).total_seconds())
        else:
            out.append((name, what, (t1 - t0).total_seconds()))
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print the table for the log given as the first argument."""
    args = list(argv if argv is not None else sys.argv[1:])
    rows = stage_times(open(args[0], encoding="utf-8", errors="replace").read().splitlines())
    total = sum(r[2] for r in rows) or 1.0
    print("| stage | first step | wall s | share |\n|---|---|---:|---:|")
    for name, what, sec in rows:
        print(f"| {name} | {what[:70]} | {sec:.0f} | {100 * sec / total:.0f}% |")
    print(f"| total | | {total:.0f} | 100% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
