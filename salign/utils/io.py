"""Atomic outputs and one-line user-facing errors shared by every salign tool.

Every tool writes its outputs through :func:`atomic_write` / :func:`atomic_dir` so that an interrupted stage never
leaves a truncated file that a later stage could read, and reports bad input by raising :class:`InputError`, which
:func:`run_cli` turns into one line on stderr (file, line and fix) and exit status 2.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, TextIO, Union

PathLike = Union[str, os.PathLike]
_UMASK = os.umask(0)
os.umask(_UMASK)


class InputError(Exception):
    """Bad user input: the message names the file (and line) and says how to fix it."""

    def __init__(self, message: str, path: Optional[PathLike] = None, line: Optional[int] = None,
                 fix: Optional[str] = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        text = f"{where}{message}"
        if fix:
            text += f" (fix: {fix})"
        super().__init__(text)
        self.path = path
        self.line = line
        self.fix = fix


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: Optional[str] = "utf-8") -> Iterator[TextIO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual permissions
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f  # type: ignore[misc]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name; it replaces ``path`` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def run_cli(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> None:
    """Run a tool's ``main``; turn :class:`InputError` into one ``ERROR:`` line and exit status 2."""
    try:
        rc = main(argv)
    except InputError as exc:
        prog = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "salign"
        print(f"ERROR [{prog}]: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(rc or 0)
