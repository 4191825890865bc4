"""Extract 80-dim Kaldi fbank features for a Kaldi data dir into ark/scp shards, then merge them with global CMVN.

Usage::

    # one shard (the recipe runs JOB=1..N through utils/queue/*.sh with log OUT/log/make_fbank.JOB.log)
    python -m salign.bin.make_fbank --data data/train --out dump/fbank/train --nj N --job J
    # check all N shards and write OUT/{feats.scp, utt2num_frames, feats_shape, cmvn.npz, .done}
    python -m salign.bin.make_fbank --data data/train --out dump/fbank/train --nj N --merge
    # all shards one after another in this process, then the merge
    python -m salign.bin.make_fbank --data data/train --out dump/fbank/train --nj N

Shard J (1-based) of N holds the J-th contiguous block of the utterance list sorted by id, in
``OUT/splitN/feats.J.{ark,scp}``, ``utt2num_frames.J``, ``cmvn.J.npz`` and a ``feats.J.done`` stamp written last.
Everything is written under temporary names and renamed when complete; a shard whose stamp matches the current
inputs is skipped, and one with leftover temporary files is redone. ``cmvn.npz`` has ESPnet's ``feats_stats.npz``
keys (``count``, ``sum``, ``sum_square``), usable as ``--normalize global_mvn --normalize_conf stats_file=...``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from kaldiio.matio import write_array

from salign.feats.fbank import FBANK_DIM, SAMPLE_RATE, Segment, iter_fbank, read_data_dir
from salign.utils.io import InputError, atomic_write, run_cli

STAMP_VERSION = 1
SHARD_FILES = ("feats.{j}.ark", "feats.{j}.scp", "utt2num_frames.{j}", "cmvn.{j}.npz")


def log(msg: str) -> None:
    """Progress line on stderr (ends up in the launcher's log)."""
    print(f"make_fbank: {msg}", file=sys.stderr, flush=True)


def shard_segments(segs: List[Segment], nj: int, job: int) -> List[Segment]:
    """The ``job``-th (1-based) of ``nj`` contiguous blocks of ``segs`` (sizes differ by at most one)."""
    base, extra = divmod(len(segs), nj)
    start = (job - 1) * base + min(job - 1, extra)
    return segs[start:start + base + (1 if job <= extra else 0)]


def make_stamp(segs: Sequence[Segment], wav_scp: Dict[str, str], num_mel_bins: int) -> str:
    """A hash of everything a shard's features depend on: segments, audio paths and feature options."""
    h = hashlib.sha256(json.dumps({"version": STAMP_VERSION, "bins": num_mel_bins, "sr": SAMPLE_RATE}).encode())
    for s in segs:
        h.update(f"{s.utt}\t{s.rec}\t{s.start!r}\t{s.end!r}\t{s.speed!r}\t{wav_scp[s.rec]}\n".encode())
    return h.hexdigest()


def _names(split: Path, job: int) -> Tuple[List[Path], List[Path], Path]:
    finals = [split / n.format(j=job) for n in SHARD_FILES]
    temps = [p.with_name(f".{p.name}.tmp") for p in finals]
    return finals, temps, split / f"feats.{job}.done"


def shard_complete(split: Path, job: int, stamp: str) -> bool:
    """True if shard ``job`` has all its files, no leftover temporaries, and a done stamp equal to ``stamp``."""
    finals, temps, done = _names(split, job)
    if any(t.exists() for t in temps) or not all(f.is_file() for f in finals) or not done.is_file():
        return False
    return done.read_text(encoding="utf-8").strip() == stamp


def run_shard(data: Path, out: Path, nj: int, job: int, num_mel_bins: int = FBANK_DIM) -> bool:
    """Extract shard ``job`` of ``nj``; returns False if it was already complete and skipped."""
    segs, wav_scp = read_data_dir(data)
    mine = shard_segments(segs, nj, job)
    split = out / f"split{nj}"
    stamp = make_stamp(mine, wav_scp, num_mel_bins)
    if shard_complete(split, job, stamp):
        log(f"shard {job}/{nj} already complete, skipped")
        return False
    split.mkdir(parents=True, exist_ok=True)
    finals, temps, done = _names(split, job)
    for p in temps + [done]:  # stale state from an interrupted or outdated run
        if p.exists():
            p.unlink()
    ark_final = finals[0].resolve()
    scp_rows: List[Tuple[str, str]] = []
    frames: Dict[str, int] = {}
    total = np.zeros(num_mel_bins, dtype=np.float64)
    total_sq = np.zeros(num_mel_bins, dtype=np.float64)
    t0, audio_s = time.time(), 0.0
    try:
        with temps[0].open("wb") as ark:
            for utt, feats in iter_fbank(mine, wav_scp, num_mel_bins=num_mel_bins, where=data / "wav.scp"):
                ark.write(f"{utt} ".encode("utf-8"))
                scp_rows.append((utt, f"{ark_final}:{ark.tell()}"))
                write_array(ark, feats)
                frames[utt] = feats.shape[0]
                total += feats.sum(axis=0, dtype=np.float64)
                total_sq += np.square(feats, dtype=np.float64).sum(axis=0)
                audio_s += feats.shape[0] * 0.01
            ark.flush()
            os.fsync(ark.fileno())
        with temps[1].open("w", encoding="utf-8") as f:
            f.writelines(f"{u} {s}\n" for u, s in sorted(scp_rows))
        with temps[2].open("w", encoding="utf-8") as f:
            f.writelines(f"{u} {frames[u]}\n" for u in sorted(frames))
        with temps[3].open("wb") as f:
            np.savez(f, count=np.int64(sum(frames.values())), sum=total, sum_square=total_sq)
        for tmp, final in zip(temps, finals):  # the scp (pointing at the final ark) appears after the ark
            os.replace(tmp, final)
    except BaseException:
        for p in temps:
            if p.exists():
                p.unlink()
        raise
    with atomic_write(done) as f:
        f.write(stamp + "\n")
    wall = time.time() - t0
    log(f"shard {job}/{nj}: {len(frames)} utterances, {audio_s:.1f} s of audio in {wall:.1f} s "
        f"({audio_s / max(wall, 1e-9):.0f}x real time)")
    return True


def merge(data: Path, out: Path, nj: int, logdir: Path, num_mel_bins: int = FBANK_DIM) -> bool:
    """Check all shards, then write the merged scp, lengths, shapes and global CMVN stats; ``.done`` last."""
    segs, wav_scp = read_data_dir(data)
    split = out / f"split{nj}"
    stamps = [make_stamp(shard_segments(segs, nj, j), wav_scp, num_mel_bins) for j in range(1, nj + 1)]
    merged_stamp = hashlib.sha256(("merge" + "".join(stamps)).encode()).hexdigest()
    done = out / ".done"
    if done.is_file() and done.read_text(encoding="utf-8").strip() == merged_stamp \
            and (out / "feats.scp").is_file() and (out / "cmvn.npz").is_file():
        log(f"{out} already merged, skipped")
        return False
    for j, stamp in enumerate(stamps, 1):
        if not shard_complete(split, j, stamp):
            raise InputError(f"feature shard {j}/{nj} is missing, incomplete or out of date "
                             f"(no matching {split / f'feats.{j}.done'}); see {logdir / f'make_fbank.{j}.log'}",
                             out, fix=f"re-run the shard: python -m salign.bin.make_fbank --data {data} --out {out} "
                                      f"--nj {nj} --job {j}")
    if done.exists():
        done.unlink()
    count, total, total_sq = 0, np.zeros(num_mel_bins), np.zeros(num_mel_bins)
    scp_lines: List[str] = []
    frames: List[Tuple[str, str]] = []
    for j in range(1, nj + 1):
        finals, _, _ = _names(split, j)
        scp_lines += finals[1].read_text(encoding="utf-8").splitlines()
        frames += [tuple(line.split()) for line in finals[2].read_text(encoding="utf-8").splitlines()]
        with np.load(finals[3]) as st:
            count += int(st["count"])
            total += st["sum"]
            total_sq += st["sum_square"]
    if len(scp_lines) != len(segs) or len(frames) != len(segs):
        raise InputError(f"shards hold {len(scp_lines)} utterances, the data dir {len(segs)}", out,
                         fix=f"delete {split} and re-run feature extraction")
    scp_lines.sort()
    frames.sort()
    with atomic_write(out / "feats.scp") as f:
        f.writelines(line + "\n" for line in scp_lines)
    with atomic_write(out / "utt2num_frames") as f:
        f.writelines(f"{u} {n}\n" for u, n in frames)
    with atomic_write(out / "feats_shape") as f:
        f.writelines(f"{u} {n},{num_mel_bins}\n" for u, n in frames)
    with atomic_write(out / "cmvn.npz", "wb") as f:
        np.savez(f, count=np.int64(count), sum=total, sum_square=total_sq)
    with atomic_write(done) as f:
        f.write(merged_stamp + "\n")
    log(f"merged {nj} shards: {len(scp_lines)} utterances, {count} frames -> {out}/feats.scp, {out}/cmvn.npz")
    return True


def get_parser() -> argparse.ArgumentParser:
    """Command-line options of make_fbank."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="Kaldi data dir (wav.scp, [segments], [utt2speed])")
    p.add_argument("--out", required=True, type=Path, help="output dir, e.g. dump/fbank/train")
    p.add_argument("--nj", type=int, default=1, help="number of shards")
    p.add_argument("--job", type=int, default=None, help="extract only this shard (1..nj)")
    p.add_argument("--merge", action="store_true", help="only merge the nj complete shards")
    p.add_argument("--logdir", type=Path, default=None, help="where shard logs are (default OUT/log); for messages")
    p.add_argument("--num_mel_bins", type=int, default=FBANK_DIM, help="mel bins (default 80)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: one shard (``--job``), the merge (``--merge``), or all shards then the merge."""
    args = get_parser().parse_args(argv)
    if args.nj < 1:
        raise InputError(f"--nj must be >= 1, got {args.nj}")
    if args.job is not None and not 1 <= args.job <= args.nj:
        raise InputError(f"--job must be in 1..{args.nj}, got {args.job}")
    if args.job is not None and args.merge:
        raise InputError("--job and --merge exclude each other; run the shards first, then --merge")
    out = args.out.resolve()
    logdir = args.logdir or out / "log"
    if args.job is not None:
        run_shard(args.data, out, args.nj, args.job, args.num_mel_bins)
        return 0
    if not args.merge:
        for j in range(1, args.nj + 1):
            run_shard(args.data, out, args.nj, j, args.num_mel_bins)
    merge(args.data, out, args.nj, logdir, args.num_mel_bins)
    return 0


if __name__ == "__main__":
    run_cli(main)
