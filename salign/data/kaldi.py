"""The one reader and writer of Kaldi ``key value`` files (``wav.scp``, ``segments``, ``utt2*``, ``text*``, hyps).

One rule for every file, every tool:

* a line is ``key`` then whitespace then ``value``; the value is the rest of the line with leading and trailing
  whitespace removed (so a trailing ``\\r`` of a CRLF file goes too); whitespace inside the value is kept as is;
  a line with only a key has the empty value (an empty hypothesis or text);
* blank lines (empty or whitespace only) are skipped;
* a duplicate key is an error naming ``file:line``, the key and the line it first appeared on;
* lines end at LF (a CR before it goes with the trailing whitespace); a CR inside a line is an error naming
  ``file:line`` (a universal-newline reader would cut the line in two and make its tail a bogus key);
* a UTF-8 byte-order mark at the start of the file, of a line or of a value is ignored (it would otherwise become
  part of a key or reach a BLEU reference); bytes that are not UTF-8 are an error;
* a missing file is an error (unless the caller says the file is optional); an empty file is an empty table;
* entries keep file order; :func:`write_table` writes them sorted by key in C-locale (code point) order, atomically.

``read_table(path)`` gives ``{key: value}``; ``iter_table(path)`` gives ``(line, key, value)`` for callers that
report errors by line or read only some keys. Data-dir logic (segments, speed factors, validation) is in
:mod:`salign.data.datadir`, built on these.
"""
from __future__ import annotations

from pathlib import Path
from typing import Collection, Dict, Iterator, Mapping, Optional, Tuple

from salign.utils.io import InputError, PathLike, atomic_write

__all__ = ["iter_table", "read_table", "write_table"]

MISSING_FIX = "re-run the stage that writes it"


def iter_table(path: PathLike, keys: Optional[Collection[str]] = None,
               fix: str = MISSING_FIX) -> Iterator[Tuple[int, str, str]]:
    """Yield ``(line number, key, value)`` of a Kaldi ``key value`` file (rules in the module docstring).

    With ``keys``, only entries whose key is in ``keys`` are yielded (duplicates are still checked for every line).
    ``fix`` is the advice given when the file is missing.
    """
    seen: Dict[str, int] = {}
    try:
        with open(path, encoding="utf-8-sig", newline="\n") as f:
            for lineno, line in enumerate(f, 1):
                if "\r" in line and "\r" in line.rstrip():
                    raise InputError("carriage return (CR) inside the line", path, lineno,
                                     f"remove it, e.g. sed -i 's/\\r//g' {path}")
                parts = line.lstrip("\ufeff").split(maxsplit=1)
                if not parts:
                    continue
                key = parts[0]
                if key in seen:
                    raise InputError(f"duplicate key '{key}' (first on line {seen[key]})", path, lineno,
                                     "keep one line per key")
                seen[key] = lineno
                if keys is None or key in keys:
                    yield lineno, key, parts[1].strip().lstrip("\ufeff") if len(parts) > 1 else ""
    except FileNotFoundError:
        raise InputError("file not found", path, fix=fix) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 ({exc.reason})", path, fix="convert the file to UTF-8") from None


def read_table(path: PathLike, keys: Optional[Collection[str]] = None, required: bool = True,
               fix: str = MISSING_FIX) -> Dict[str, str]:
    """A Kaldi ``key value`` file as an insertion-ordered ``{key: value}`` (rules in the module docstring).

    ``keys`` restricts the result to those keys; ``required=False`` gives ``{}`` for a missing file.
    """
    if not required and not Path(path).is_file():
        return {}
    return {key: value for _, key, value in iter_table(path, keys, fix)}


def write_table(path: PathLike, mapping: Mapping[str, str]) -> None:
    """Write ``key value`` lines sorted by key (C locale order), atomically; an empty value writes the key alone."""
    with atomic_write(path) as f:
        for key in sorted(mapping):
            value = mapping[key]
            f.write(f"{key} {value}\n" if value != "" else f"{key}\n")
