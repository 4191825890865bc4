"""One "already done" rule for every stage tool: a stamp of the inputs' content and the options.

A :class:`Stamp` is a JSON file written after a step finished. It records

* every input: a file by its size and the sha256 of its content (a file over 256 MiB by its size and ``mtime_ns``,
  hashing it would cost more than the step it guards); a directory by the same for every file inside it (recursively,
  sorted by relative path; the stamp file itself is left out);
* the options (any JSON value; compared by their JSON text);
* the outputs the step produced (they must exist when the stamp is written and still exist when it is checked; a
  model file, ``*.pth``, must also still be whole: its zip index intact,
  :func:`salign.utils.checkpoint.describe_damage`).

:meth:`Stamp.reason` is ``None`` when the stamp exists and all of that matches; otherwise it is a one-line reason to
redo the step ("no stamp", "input data/train/wav.scp changed", "option nbpe changed", "output ... is missing",
"output exp/st/valid.acc.ave.pth: truncated model file (...)"); a reason about an output means the inputs and options
are the same.
Inputs are hashed once per :class:`Stamp` object: :meth:`Stamp.write` records what :meth:`Stamp.reason` saw, so an
input changed while the step ran makes the next check fail. A changed file with the same name and length is seen.

Shell stages use the same rule through ``python -m salign.bin.stamp check|write|why`` (see that tool).
:meth:`Stamp.recorded` checks a finished step's stamp against what it recorded (did an input change since, or is one
gone?), :meth:`Stamp.stale` turns a failed check into the one-line error of the step that refuses the stale result,
and :func:`difference` names what differs between two stamps (why a step was redone).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from salign.utils.checkpoint import describe_damage
from salign.utils.io import InputError, PathLike, atomic_write

STAMP_VERSION = 1
BIG_FILE = 256 << 20  # bytes; larger files are identified by size + mtime_ns instead of a content hash


def file_identity(path: Path) -> Dict[str, Any]:
    """A file's identity: size and sha256 of its content, or size and ``mtime_ns`` for a file over 256 MiB."""
    st = path.stat()
    if st.st_size > BIG_FILE:
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"size": st.st_size, "sha256": h.hexdigest()}


def input_identity(path: Path, skip: Optional[Path] = None) -> Any:
    """The identity of an input: a file's (:func:`file_identity`), a directory's files' by relative path, or None."""
    if path.is_dir():
        found: Dict[str, Any] = {}
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                p = Path(root) / name
                if skip is not None and p.resolve() == skip:
                    continue
                found[p.relative_to(path).as_posix()] = file_identity(p)
        return {"files": found}
    if path.is_file():
        return file_identity(path)
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> Optional[str]:
    """The first difference between two stamp records (inputs, then options) as a one-line reason, or None."""
    old_inputs, new_inputs = old.get("inputs") or {}, new.get("inputs") or {}
    for p, ident in new_inputs.items():
        if p not in old_inputs:
            return f"input {p} is new"
        if _canonical(old_inputs[p]) != _canonical(ident):
            return f"input {p} changed"
    for p in old_inputs:
        if p not in new_inputs:
            return f"input {p} is no longer used"
    old_options, new_options = old.get("options") or {}, new.get("options") or {}
    for key in sorted(set(old_options) | set(new_options)):
        if _canonical(old_options.get(key)) != _canonical(new_options.get(key)):
            return f"option {key} changed"
    return None


class Stamp:
    """The stamp file ``path`` of one step with its ``inputs`` (files or directories) and ``options``."""

    def __init__(self, path: PathLike, inputs: Sequence[PathLike] = (),
                 options: Optional[Mapping[str, Any]] = None) -> None:
        self.path = Path(path)
        self.inputs: List[str] = [str(p) for p in inputs]
        self.options: Dict[str, Any] = json.loads(_canonical(dict(options or {})))  # JSON round trip: tuples -> lists
        self._identities: Optional[Dict[str, Any]] = None
        #: a missing input is a reason to redo (:meth:`recorded`: what the step read is gone) instead of an error
        self.missing_is_reason = False

    def identities(self) -> Dict[str, Any]:
        """Each input's identity (computed once); a missing input raises :class:`InputError`."""
        if self._identities is None:
            skip = self.path.resolve()
            ids: Dict[str, Any] = {}
            for p in self.inputs:
                ident = input_identity(Path(p), skip)
                if ident is None and not self.missing_is_reason:
                    raise InputError("input is missing", p, fix="run the stage that makes it first")
                ids[p] = ident
            self._identities = ids
        return self._identities

    def record(self) -> Dict[str, Any]:
        """What the stamp file holds (without the outputs)."""
        return {"version": STAMP_VERSION, "inputs": self.identities(), "options": self.options}

    def _old(self) -> Optional[Dict[str, Any]]:
        try:
            old = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return old if isinstance(old, dict) else None

    def reason(self) -> Optional[str]:
        """None if the stamp exists and matches the inputs, options and outputs; else a one-line reason."""
        new = self.record()  # hashed now, so that write() records what the step started from
        old = self._old()
        if old is None:
            return "no stamp" if not self.path.exists() else f"stamp {self.path} is unreadable"
        for p, ident in new["inputs"].items():
            if ident is None:
                return f"input {p} is missing"
        if old.get("version") != STAMP_VERSION:
            return f"stamp {self.path} has another version"
        why = difference(old, new)
        if why is not None:
            return why
        for p in old.get("outputs") or []:
            if not Path(p).exists():
                return f"output {p} is missing"
            if p.endswith(".pth"):
                damage = describe_damage(p)
                if damage is not None:
                    return f"output {p}: {damage}"
        return None

    @classmethod
    def recorded(cls, path: PathLike) -> "Stamp":
        """The stamp at ``path`` with the inputs and options it recorded: its :meth:`reason` says whether what the
        step consumed is unchanged since (how a later stage checks an earlier one's result); no stamp: no inputs."""
        old = cls(path)._old() or {}
        stamp = cls(path, list(old.get("inputs") or {}), old.get("options") or {})
        stamp.missing_is_reason = True
        return stamp

    def stale(self, what: PathLike, stage: str) -> None:
        """Raise a one-line :class:`InputError` unless this (recorded) stamp is current: how a step refuses an earlier
        stage's result that is missing, unfinished or made from inputs that changed since (``what``: that result;
        ``stage``: the stage that remakes it, e.g. ``stage 3 (features)``)."""
        why = self.reason()
        if why is None:
            return
        if why == "no stamp":
            raise InputError(f"not finished (no stamp {self.path.name}: never made, interrupted, or made by an older "
                             "salign)", what, fix=f"run {stage} again")
        raise InputError(f"out of date ({why} since it was made)", what, fix=f"run {stage} again")

    def fresh(self) -> bool:
        """True when :meth:`reason` is None."""
        return self.reason() is None

    def write(self, outputs: Sequence[PathLike] = ()) -> None:
        """Record the inputs (as first seen), options and ``outputs`` (each must exist) atomically."""
        for p in outputs:
            if not Path(p).exists():
                raise InputError("output is missing; the step did not finish", p,
                                 fix="look at the step's log and run it again")
        data = dict(self.record(), outputs=[str(p) for p in outputs])
        with atomic_write(self.path) as f:
            f.write(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
