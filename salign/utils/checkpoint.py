"""Model and checkpoint files that a crash or a full disk cannot turn into a dead end.

* :func:`check_model_file`: one line (:class:`InputError`) for a model file that cannot be loaded -- missing (or a
  broken link), empty, not a PyTorch file, cut short (its zip index missing or pointing past the end), or, with
  ``deep``, damaged inside (an entry failing its CRC-32). Cheap without ``deep``: the zip index only. It imports no
  torch unless ``deep`` meets a legacy (pickle) file, so the stamp tool can call it on every check.
* :func:`safe_save`: ``torch.save`` for training's files (``checkpoint.pth``, ``<N>epoch.pth``, averaged models):
  the free space of the target's disk is checked against the object's size first (a full disk is named as such,
  before anything is written), the file is written under a temporary name, synced and renamed into place, so a
  crash or a full disk never leaves a truncated file under the real name.

:mod:`salign.tasks.trainer` uses both inside ESPnet's trainer (verified resume, verified averaging).
"""
from __future__ import annotations

import contextlib
import errno
import os
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional

from salign.utils.io import InputError, PathLike

__all__ = ["LOAD_ERRORS", "MODEL_FIX", "check_model_file", "describe_damage", "free_bytes", "object_bytes",
           "safe_save"]

#: the advice for a missing, empty or truncated model file (the recipe's stage 12 and 14 read ``--inference_model``)
MODEL_FIX = ("re-run training (stage 11) to write it, or pick a checkpoint that exists with the recipe's "
             "--inference_model (e.g. valid.acc.best.pth)")
#: what ``torch.load`` raises for a truncated or corrupt file (zip reader, pickle, short reads)
LOAD_ERRORS = (OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, UnicodeDecodeError)
#: room kept beyond a checkpoint's tensors (its pickled structure, the zip headers, the file system's own needs)
MARGIN = 16 << 20


def check_model_file(path: PathLike, flag: str = "--st_model_file", deep: bool = False,
                     fix: str = MODEL_FIX) -> None:
    """One line (:class:`InputError`) for a model file that cannot be loaded: missing (or a broken link such as
    ``valid.acc.ave.pth`` without its target), empty, not a PyTorch file, or a zip archive cut short (an interrupted
    save or copy: the archive's index at its end is missing or points past the end). Cheap: the archive's index
    only; ``deep`` also reads every entry against its checksum, so that damage inside the archive is found too."""
    if not path:
        raise InputError(f"no model file given ({flag})", fix=f"give {flag} (the .pth written by training)")
    p = Path(path)
    if not p.exists():
        what = f"broken link to '{os.readlink(p)}'" if p.is_symlink() else "model file not found"
        raise InputError(f"{what} (given as {flag})", p, fix=fix)
    if p.is_dir():
        raise InputError(f"a directory, not a model file (given as {flag})", p, fix=fix)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(4)
        if size == 0:
            raise InputError(f"empty model file (given as {flag}; interrupted while it was written?)", p, fix=fix)
        if head[:2] == b"PK":  # torch.save's zip format
            with zipfile.ZipFile(p) as z:
                infos = z.infolist()
                if not infos or any(i.header_offset + i.compress_size > size for i in infos):
                    raise zipfile.BadZipFile("an entry lies past the end of the file")
                bad = z.testzip() if deep else None  # every entry against its CRC-32
            if bad is not None:
                raise InputError(f"corrupt model file (its entry '{bad}' fails its checksum; given as {flag})", p,
                                 fix=fix)
        elif head[:1] != b"\x80":  # nor the legacy pickle format
            raise InputError(f"not a PyTorch model file (given as {flag})", p, fix=fix)
        elif deep:
            import torch

            torch.load(p, map_location="cpu", weights_only=False)
    except InputError:
        raise
    except PermissionError:
        raise InputError(f"cannot read the model file (permission denied; given as {flag})", p,
                         fix="make it readable (chmod a+r)") from None
    except zipfile.BadZipFile:
        raise InputError(f"truncated model file (its zip index is missing or points past the end; given as {flag})",
                         p, fix=fix) from None
    except (*LOAD_ERRORS, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"truncated or corrupt model file ({first}; given as {flag})", p, fix=fix) from None


def describe_damage(path: PathLike, deep: bool = False) -> Optional[str]:
    """None when ``path`` is a loadable model file (:func:`check_model_file`), else what is wrong with it, in a few
    words ("missing", "truncated model file (...)")."""
    if not Path(path).exists() and not Path(path).is_symlink():
        return "missing"
    try:
        check_model_file(path, "-", deep=deep)
    except InputError as exc:
        what = str(exc).removeprefix(f"{path}: ").split(" (fix: ")[0]
        return what.replace("; given as -)", ")").replace(" (given as -)", "")
    return None


def object_bytes(obj: Any) -> int:
    """The bytes of every tensor (its storage, counted once) in a checkpoint object: dicts, lists and tuples nested
    in any way; what ``torch.save`` writes, give or take the pickled structure."""
    import torch

    seen = set()
    total = 0
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, torch.Tensor):
            storage = x.untyped_storage()
            key = (storage.data_ptr(), storage.nbytes()) if x.device.type != "meta" else id(x)
            if key not in seen:
                seen.add(key)
                total += storage.nbytes()
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
    return total


def free_bytes(directory: PathLike) -> int:
    """Free bytes on the file system of ``directory`` (for this user)."""
    return shutil.disk_usage(directory).free


def _disk_full(path: Path, need: int, free: int) -> InputError:
    return InputError(f"disk full: {free / 1e9:.2f} GB free on the disk of {path.parent}, this checkpoint needs "
                      f"~{need / 1e9:.2f} GB", path,
                      fix="free space there, or train into a larger disk (the recipe's --expdir), then run the "
                          "same training again: it resumes from its last complete epoch")


def _no_space(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception it arose from is ENOSPC/EDQUOT (torch's zip writer turns one into a
    ``RuntimeError`` such as ``basic_ios::clear: iostream error`` or ``unexpected pos``)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def safe_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
    """``torch.save(obj, f)`` for a file name ``f``: free space checked first (:func:`free_bytes` against
    :func:`object_bytes` + a margin), written under a temporary name in the same directory, synced, renamed over
    ``f``. A disk that fills anyway is named as such (never ``basic_ios::clear: iostream error``); the temporary
    file is removed and ``f`` keeps what it held. A file object ``f`` goes to ``torch.save`` as is."""
    import torch

    if not isinstance(f, (str, os.PathLike)):
        torch.save(obj, f, *args, **kwargs)
        return
    path = Path(f)
    need = object_bytes(obj) + MARGIN
    free = free_bytes(path.parent)
    if free < need:
        raise _disk_full(path, need, free)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh, *args, **kwargs)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)  # (a link under the name, e.g. an averaged model, is replaced, not its target)
    except BaseException as exc:
        full = _no_space(exc) or (isinstance(exc, (OSError, RuntimeError)) and free_bytes(path.parent) < 1 << 20)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full:
            raise _disk_full(path, need, free_bytes(path.parent)) from None
        raise
