"""Helpers of the kill-and-resume tests: run a command to the end, or start it in its own process group and kill the
whole group with SIGKILL (the launcher and every job under it, as a crash or an OOM killer would) at a chosen point."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

__all__ = ["run", "start", "kill_when"]


def _env(extra: Optional[Mapping[str, str]]) -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(extra or {}))


def run(cmd: Sequence, cwd: Path, log: str, env: Optional[Mapping[str, str]] = None, ok: bool = True
        ) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd`` (one thread), its output in ``cwd/log``; ``ok``: it must succeed (else the log's end)."""
    with open(cwd / log, "w") as f:
        proc = subprocess.run(list(map(str, cmd)), cwd=cwd, env=_env(env), stdout=f, stderr=subprocess.STDOUT,
                              timeout=300)
    if ok:
        assert proc.returncode == 0, (cwd / log).read_text()[-3000:]
    return proc


def start(cmd: Sequence, cwd: Path, log: str, env: Optional[Mapping[str, str]] = None) -> subprocess.Popen:
    """Start ``cmd`` in ``cwd`` in a new session (its own process group), its output in ``cwd/log``."""
    with open(cwd / log, "w") as f:
        return subprocess.Popen(list(map(str, cmd)), cwd=cwd, env=_env(env), stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """SIGKILL ``proc``'s process group as soon as ``ready()`` holds (polled every 10 ms); fail if the command ended
    first (``what``: the point it was to be killed at, for the message)."""
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    alive = proc.poll() is None
    if alive:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert alive and ready(), f"the command ended (or timed out) before it could be killed {what}"
