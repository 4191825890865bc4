"""The one reader and writer of Kaldi ``key value`` files (``wav.scp``, ``segments``, ``utt2*``, ``text*``, hyps).

One rule for every file, every tool:

* a line is ``key`` then whitespace then ``value``; the value is the rest of the line with leading and trailing
  whitespace removed (so a trailing ``\\r`` of a CRLF file goes too); whitespace inside the value is kept as is;
  a line with only a key has the empty value (an empty hypothesis or text);
* blank lines (empty or whitespace only) are skipped;
* a duplicate key is an error naming ``file:line``, the key and the line it first appeared on;
* lines end at LF (a CR before it goes with the trailing whitespace), or at CR in a file whose first line ends in
  a CR alone (old Mac line ends: every line ends so); a CR inside a line of an LF file is an error naming
  ``file:line`` (a universal-newline reader would cut the line in two and make its tail a bogus key), and the fix
  (:data:`CR_FIX`) keeps every line;
* a UTF-8 byte-order mark at the start of the file, of a line or of a value is ignored (it would otherwise become
  part of a key or reach a BLEU reference); bytes that are not UTF-8 are an error;
* a missing file is an error (unless the caller says the file is optional); an empty file is an empty table;
* entries keep file order; :func:`write_table` writes them sorted by key in C-locale (code point) order, atomically.

``read_table(path)`` gives ``{key: value}``; ``iter_table(path)`` gives ``(line, key, value)`` for callers that
report errors by line or read only some keys. ``read_texts(path)`` is the reader of transcripts, translations and
hypotheses: ``read_table`` with every value in Unicode NFC (composed accents, as SentencePiece and sacreBLEU see them:
an NFD reference would otherwise score identical sentences far below 100). Data-dir logic (segments, speed
factors, validation) is in :mod:`salign.data.datadir`, built on these.
"""
from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Collection, Dict, Iterator, Mapping, Optional, Tuple

from salign.utils.io import InputError, PathLike, atomic_write

__all__ = ["CR_FIX", "iter_table", "line_end", "nfc", "read_table", "read_texts", "write_table"]

MISSING_FIX = "re-run the stage that writes it"


def cr_fix(path: PathLike) -> str:
    """The fix for a CR inside a line: each becomes a space (a CRLF line end loses its CR); no line is joined."""
    return f"replace it by a space, e.g. sed -i 's/\\r$//; s/\\r/ /g' {path}"


CR_FIX = cr_fix("FILE")


def line_end(head: str) -> str:
    """A text's line end, from its first one: ``"\\r"`` when the first line ends in a CR alone (an old-Mac file),
    else ``"\\n"`` (LF, or CRLF: the CR then goes with the line's trailing whitespace)."""
    i = head.find("\r")
    j = head.find("\n")
    if i >= 0 and (j < 0 or i < j) and head[i + 1: i + 2] != "\n" and i + 1 < len(head):
        return "\r"
    return "\n"


def nfc(text: str) -> str:
    """Unicode NFC (canonical composition): ``e`` + combining acute becomes ``é``; what every text reader applies."""
    return unicodedata.normalize("NFC", text) if not text.isascii() else text


def iter_table(path: PathLike, keys: Optional[Collection[str]] = None,
               fix: str = MISSING_FIX) -> Iterator[Tuple[int, str, str]]:
    """Yield ``(line number, key, value)`` of a Kaldi ``key value`` file (rules in the module docstring).

    With ``keys``, only entries whose key is in ``keys`` are yielded (duplicates are still checked for every line).
    ``fix`` is the advice given when the file is missing.
    """
    seen: Dict[str, int] = {}
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            end = line_end(f.read(1 << 16))
        other = "\n" if end == "\r" else "\r"
        with open(path, encoding="utf-8-sig", newline=end) as f:
            for lineno, line in enumerate(f, 1):
                if other in line and (end == "\r" or other in line.rstrip()):
                    what = "line feed (LF) inside the line of a file whose lines end in CR" if end == "\r" \
                        else "carriage return (CR) inside the line"
                    raise InputError(what, path, lineno, cr_fix(path) if end == "\n" else
                                     f"give the file one kind of line end, e.g. tr '\\r' '\\n' < {path} > {path}.lf")
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


def read_texts(path: PathLike, keys: Optional[Collection[str]] = None, required: bool = True,
               fix: str = MISSING_FIX) -> Dict[str, str]:
    """A text table (transcripts, translations, hypotheses) as :func:`read_table` gives it, every value in NFC."""
    return {key: nfc(value) for key, value in read_table(path, keys, required, fix).items()}


def write_table(path: PathLike, mapping: Mapping[str, str]) -> None:
    """Write ``key value`` lines sorted by key (C locale order), atomically; an empty value writes the key alone."""
    with atomic_write(path) as f:
        for key in sorted(mapping):
            value = mapping[key]
            f.write(f"{key} {value}\n" if value != "" else f"{key}\n")
