"""Parallel decoding jobs: each job's share of a set's keys, and the merge of the jobs' ESPnet outputs.

Job ``j`` of ``nj`` decodes a contiguous share of the sorted keys (:func:`key_shares`) into ``<dir>/output.j``;
:func:`merge_outputs` checks that every job wrote every key of its share and writes ``<dir>/<n>best_recog/<file>``
sorted by key, atomically.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from salign.data.kaldi import iter_table, read_table, write_table
from salign.utils.io import InputError, PathLike, atomic_write


def key_shares(keys: Sequence[str], nj: int) -> List[List[str]]:
    """``nj`` contiguous shares of the sorted ``keys`` (job ``j`` gets ``shares[j - 1]``; jobs past the number of
    keys get an empty share)."""
    keys = sorted(keys)
    n = max(1, min(nj, len(keys)))
    shares = [keys[j * len(keys) // n: (j + 1) * len(keys) // n] for j in range(n)]
    return shares + [[] for _ in range(max(0, nj - n))]


def split_keys(scp: PathLike, nj: int, out: Path) -> List[Path]:
    """Write ``out/keys.{1..n}`` with the non-empty shares of the keys of ``scp`` (n = min(nj, #keys))."""
    keys = list(read_table(scp))
    if not keys:
        raise InputError("no utterances", scp, fix="check the previous stages' outputs")
    paths = []
    for j, share in enumerate(key_shares(keys, nj), 1):
        if share:
            paths.append(write_keys(out / f"keys.{j}", share))
    return paths


def read_keys(path: PathLike) -> List[str]:
    """The keys (first fields) of a Kaldi table or key list, in file order."""
    return [key for _, key, _ in iter_table(path)]


def write_keys(path: Path, keys: Sequence[str]) -> Path:
    """A key list, one key a line, written atomically."""
    with atomic_write(path) as f:
        f.writelines(f"{k}\n" for k in keys)
    return path


def merge_outputs(out: Path, shares: Sequence[Optional[Sequence[str]]], log: Optional[str] = None) -> int:
    """Concatenate ``out/output.J/<n>best_recog/<file>`` of the jobs with a non-empty share into
    ``out/<n>best_recog/<file>`` (earlier merged outputs removed first); returns the number of utterances.

    Every job must have written ``1best_recog/token_int`` for exactly its share (None: a share not checked).
    ``log``: the jobs' log files, ``JOB`` standing for the job number (named in errors; default
    ``out/logdir/decode.JOB.log``).
    """
    merged: Dict[str, Dict[str, str]] = {}
    log = log or f"{out}/logdir/decode.JOB.log"
    for j, share in enumerate(shares, 1):
        if share is not None and not share:
            continue
        job, job_log = out / f"output.{j}", log.replace("JOB", str(j))
        if not job.is_dir():
            raise InputError("decoding job wrote nothing", job, fix=f"see {job_log}")
        for f in sorted(job.glob("*best_recog/*")):
            rel = f"{f.parent.name}/{f.name}"
            table = read_table(f)
            if share is not None and rel == "1best_recog/token_int" and set(table) != set(share):
                raise InputError(f"job {j} decoded {len(table)} of {len(share)} utterances", f,
                                 fix=f"see {job_log} and re-run the stage")
            merged.setdefault(rel, {}).update(table)
    if "1best_recog/token_int" not in merged:
        raise InputError("no decoding outputs found", out, fix="re-run the decoding stage")
    for old in out.glob("*best_recog"):
        shutil.rmtree(old)
    for rel, table in merged.items():
        write_table(out / rel, table)
    return len(merged["1best_recog/token_int"])
