"""Split a decoding job into key files and merge the jobs' ESPnet outputs back.

    python -m salign.bin.decode_utils split --scp dump/filtered/tst-COMMON/feats.scp --nj 4 --out DIR/split4
    # (any Kaldi table keyed by utterance will do, e.g. the wav.scp of --feats_type raw)
    python -m salign.bin.decode_utils merge --nj 4 --out DIR   # DIR/output.{1..4}/1best_recog/* -> DIR/1best_recog/*

``merge`` checks that every job wrote every one of its keys (naming the job's log otherwise) and writes the merged
files atomically, sorted by key.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from salign.data.datadir import read_kv
from salign.utils.io import InputError, atomic_write, run_cli


def split_keys(scp: Path, nj: int, out: Path) -> List[Path]:
    """Write ``out/keys.{1..nj}`` with contiguous shares of the keys of ``scp``."""
    keys = sorted(read_kv(scp))
    if not keys:
        raise InputError("no utterances", scp, fix="check the previous stages' outputs")
    nj = max(1, min(nj, len(keys)))
    paths = []
    for j in range(nj):
        share = keys[j * len(keys) // nj: (j + 1) * len(keys) // nj]
        path = out / f"keys.{j + 1}"
        with atomic_write(path) as f:
            f.writelines(f"{k}\n" for k in share)
        paths.append(path)
    return paths


def merge(out: Path, nj: int, split: Optional[Path] = None, log: Optional[str] = None) -> int:
    """Concatenate ``out/output.J/<n>best_recog/<file>`` into ``out/<n>best_recog/<file>``.

    ``log``: the jobs' log files, ``JOB`` standing for the job number (named in errors; default
    ``out/logdir/decode.JOB.log``)."""
    merged: Dict[str, Dict[str, str]] = {}
    log = log or f"{out}/logdir/decode.JOB.log"
    for j in range(1, nj + 1):
        job = out / f"output.{j}"
        job_log = log.replace("JOB", str(j))
        if not job.is_dir():
            raise InputError("decoding job wrote nothing", job, fix=f"see {job_log}")
        for f in sorted(job.glob("*best_recog/*")):
            rel = f"{f.parent.name}/{f.name}"
            table = read_kv(f)
            if split is not None and rel.endswith("/token_int") and f.parent.name == "1best_recog":
                want = set(read_kv(split / f"keys.{j}"))
                if set(table) != want:
                    raise InputError(f"job {j} decoded {len(table)} of {len(want)} utterances", f,
                                     fix=f"see {job_log} and re-run the stage")
            merged.setdefault(rel, {}).update(table)
    if not merged:
        raise InputError("no decoding outputs found", out, fix="re-run the decoding stage")
    for rel, table in merged.items():
        with atomic_write(out / rel) as f:
            f.writelines(f"{k} {table[k]}\n" if table[k] else f"{k}\n" for k in sorted(table))
    return len(merged.get("1best_recog/token_int", {}))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split")
    s.add_argument("--scp", type=Path, required=True)
    s.add_argument("--nj", type=int, required=True)
    s.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("merge")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--nj", type=int, required=True)
    m.add_argument("--split", type=Path, default=None, help="the split dir, to check every key was decoded")
    m.add_argument("--log", default=None, help="the jobs' logs, JOB standing for the job number")
    a = p.parse_args(argv)
    if a.cmd == "split":
        print(len(split_keys(a.scp, a.nj, a.out)))
    else:
        n = merge(a.out, a.nj, a.split, a.log)
        print(f"[decode_utils] merged {n} utterances into {a.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
