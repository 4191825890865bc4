"""No test fails for being slow (issue 22, item 13): a loaded CI machine must not turn the suite red.

A speed limit is measured by ``benchmarks/`` (e.g. ``benchmarks/bench_prep.py`` for the MuST-C yaml parser), or
asserted as scaling (twice the input under three times the time). This scan of every test module refuses an
``assert`` that compares a wall-clock reading (``time.time()``, ``time.monotonic()``, ``time.perf_counter()``, or a
name assigned from an expression with one) against a number of seconds.
"""
from __future__ import annotations

import ast
from typing import List, Set

from tests.conftest import REPO

CLOCKS = {"time", "monotonic", "perf_counter", "process_time"}


def _reads_clock(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in CLOCKS
               and isinstance(n.func.value, ast.Name) and n.func.value.id == "time" for n in ast.walk(node))


def _is_seconds(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value,
                                                                                                      bool)


def timed_asserts(source: str) -> List[int]:
    """Line numbers of the asserts that compare a clock reading with a constant."""
    tree = ast.parse(source)
    timed: Set[str] = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and _reads_clock(n.value)
                       for t in n.targets if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        for cmp in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            sides = [cmp.left, *cmp.comparators]
            clock = any(_reads_clock(s) or any(isinstance(n, ast.Name) and n.id in timed for n in ast.walk(s))
                        for s in sides)
            if clock and any(_is_seconds(s) for s in sides):
                found.append(node.lineno)
    return found


def test_the_scan_finds_a_speed_limit_and_passes_a_scaling_check():
    assert timed_asserts("import time\nt = time.time()\nf()\nassert time.time() - t < 5.0\n") == [4]
    assert timed_asserts("import time\nt = time.monotonic()\nf()\nel = time.monotonic() - t\nassert el < 60\n") == [5]
    assert timed_asserts("a, b = best(1), best(2)\nassert b < 3.0 * a\n") == []


def test_no_test_asserts_a_speed_limit():
    found = [f"{p.relative_to(REPO)}:{line}" for p in sorted((REPO / "tests").rglob("*.py"))
             for line in timed_asserts(p.read_text(encoding="utf-8"))]
    assert not found, f"wall-clock limits asserted in tests (move them to benchmarks/, or assert scaling): {found}"
