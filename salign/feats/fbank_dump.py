"""Stage 3, fbank: Kaldi fbank features of a data dir as ark/scp shards, merged with global CMVN statistics.

Shard J (1-based) of N holds the J-th contiguous block of the utterance list sorted by id, in
``OUT/splitN/feats.J.{ark,scp}``, ``utt2num_frames.J``, ``cmvn.J.npz`` and a ``feats.J.done`` stamp written last
(sharding, stamps and the merge checks: :mod:`salign.feats.shards`). The merge writes ``OUT/feats.scp``,
``utt2num_frames`` and ``cmvn.npz`` (ESPnet's ``feats_stats.npz`` keys ``count``, ``sum``, ``sum_square``, usable as
``--normalize global_mvn --normalize_conf stats_file=...``); shape files are written by stage 10 only.

``--stack K`` (default 1) stores K consecutive frames as one (``80*K`` dims at ``10*K`` ms, the trailing partial group
completed by repeating the last frame): the frame stacking of ``--preencoder stack`` done once at dump time, so that a
model that has no stacking pre-encoder (ESPnet's stock ST model) reads the same low-frame-rate input. CMVN statistics
and ``utt2num_frames`` are those of the stacked frames.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, List, Optional, Tuple

import numpy as np
from kaldiio.matio import write_array

from salign.data.datadir import Segment
from salign.feats.fbank import FBANK_DIM, SAMPLE_RATE, iter_fbank
from salign.feats.shards import Shard, ShardedDump
from salign.utils.io import InputError, atomic_write

__all__ = ["FeatureDump", "FbankDump", "stack_frames"]

STAMP_VERSION = 1


def stack_frames(feats: np.ndarray, k: int) -> np.ndarray:
    """(T, D) -> (ceil(T/k), D*k): k consecutive frames side by side (a trailing partial group repeats the last
    frame)."""
    if k == 1:
        return feats
    t, d = feats.shape
    pad = (-t) % k
    if pad:
        feats = np.concatenate([feats, np.repeat(feats[-1:], pad, axis=0)])
    return np.ascontiguousarray(feats.reshape((t + pad) // k, d * k))


class FeatureDump(ShardedDump):
    """Feature matrices as Kaldi ark/scp shards with frame counts and partial CMVN sums, merged with global CMVN
    statistics: the layout every frame-level feature type shares (fbank here, a pretrained encoder's states in
    :mod:`salign.feats.encoder_dump`). Subclasses give :meth:`features`; :meth:`write_matrix` may compress.
    Shard J: ``feats.J.ark`` (written first: the scp points into it), ``feats.J.scp``, ``utt2num_frames.J`` and
    ``cmvn.J.npz``; merged: ``feats.scp``, ``utt2num_frames``, ``cmvn.npz``."""

    shard_files = ("feats.{j}.ark", "feats.{j}.scp", "utt2num_frames.{j}", "cmvn.{j}.npz")
    shard_done = "feats.{j}.done"
    merged_files = ("feats.scp", "utt2num_frames", "cmvn.npz")
    dim: Optional[int] = None  #: the feature width when known before any utterance (CMVN of an empty dump)
    frame_shift = 0.01  #: seconds per stored frame
    frame_note = ""  #: after "N frames" in the merge's summary line

    def features(self, segs: List[Segment]) -> Iterator[Tuple[str, np.ndarray]]:
        """(utterance id, (T, D) float32 features) of each of ``segs``, in order."""
        raise NotImplementedError

    def write_matrix(self, ark: BinaryIO, feats: np.ndarray) -> None:
        """One matrix into the open ark (Kaldi binary ``FM``)."""
        write_array(ark, feats)

    def zeros(self) -> np.ndarray:
        """CMVN sums of no frame."""
        return np.zeros(self.dim or 1, dtype=np.float64)

    def write_shard(self, segs: List[Segment], temps: List[Path], finals: List[Path]) -> Tuple[int, float]:
        """Features of ``segs`` into the ark, its scp, frame counts and partial CMVN sums."""
        ark_final = finals[0].resolve()
        scp_rows: List[Tuple[str, str]] = []
        frames: Dict[str, int] = {}
        total = total_sq = None
        with temps[0].open("wb") as ark:
            for utt, feats in self.features(segs):
                ark.write(f"{utt} ".encode("utf-8"))
                scp_rows.append((utt, f"{ark_final}:{ark.tell()}"))
                self.write_matrix(ark, feats)
                frames[utt] = feats.shape[0]
                s, sq = feats.sum(axis=0, dtype=np.float64), np.square(feats, dtype=np.float64).sum(axis=0)
                total, total_sq = (s, sq) if total is None else (total + s, total_sq + sq)
                self.advance()
            ark.flush()
            os.fsync(ark.fileno())
        with temps[1].open("w", encoding="utf-8") as f:
            f.writelines(f"{u} {s}\n" for u, s in sorted(scp_rows))
        with temps[2].open("w", encoding="utf-8") as f:
            f.writelines(f"{u} {frames[u]}\n" for u in sorted(frames))
        with temps[3].open("wb") as f:
            np.savez(f, count=np.int64(sum(frames.values())), sum=self.zeros() if total is None else total,
                     sum_square=self.zeros() if total_sq is None else total_sq)
        return len(frames), sum(frames.values()) * self.frame_shift

    def write_merged(self, shards: List[Shard]) -> str:
        """The merged scp, lengths and global CMVN stats (shards without a frame add nothing)."""
        count, total, total_sq = 0, None, None
        for s in shards:
            with np.load(s.finals[3]) as st:
                if int(st["count"]) == 0:
                    continue
                count += int(st["count"])
                total = st["sum"] if total is None else total + st["sum"]
                total_sq = st["sum_square"] if total_sq is None else total_sq + st["sum_square"]
        scp_lines = self.merged_rows(shards, 1)
        frames = [tuple(line.split()) for line in self.merged_rows(shards, 2)]
        out = self.out
        with atomic_write(out / "feats.scp") as f:
            f.writelines(line + "\n" for line in scp_lines)
        with atomic_write(out / "utt2num_frames") as f:
            f.writelines(f"{u} {n}\n" for u, n in frames)
        with atomic_write(out / "cmvn.npz", "wb") as f:
            np.savez(f, count=np.int64(count), sum=self.zeros() if total is None else total,
                     sum_square=self.zeros() if total_sq is None else total_sq)
        return f"{len(scp_lines)} utterances, {count} frames{self.frame_note} -> {out}/feats.scp, {out}/cmvn.npz"


class FbankDump(FeatureDump):
    """80-dim Kaldi fbank (``--stack K``: K frames stored as one)."""

    tool = "make_fbank"
    out_example = "dump/fbank/train"

    @classmethod
    def add_options(cls, p: argparse.ArgumentParser) -> None:
        """``--num_mel_bins``."""
        p.add_argument("--num_mel_bins", type=int, default=FBANK_DIM, help="mel bins (default 80)")
        p.add_argument("--stack", type=int, default=1,
                       help="store this many consecutive frames as one (default 1: none)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "FbankDump":
        """The dump of the parsed options."""
        if args.stack < 1:
            raise InputError(f"--stack {args.stack}: must be >= 1", fix="1 (no stacking) or e.g. 2 (20 ms frames)")
        return cls(args.data, args.out.resolve(), args.nj, args.num_mel_bins, args.stack)

    def __init__(self, data: Path, out: Path, nj: int, num_mel_bins: int = FBANK_DIM, stack: int = 1) -> None:
        super().__init__(data, out, nj)
        self.num_mel_bins, self.stack = num_mel_bins, stack
        self.dim = num_mel_bins * stack
        self.frame_shift = 0.01 * stack

    def options(self) -> Dict[str, object]:
        """Feature options (the stamp of a shard; ``stack`` only when used, so older dumps stay valid)."""
        opts: Dict[str, object] = {"version": STAMP_VERSION, "bins": self.num_mel_bins, "sr": SAMPLE_RATE}
        if self.stack != 1:
            opts["stack"] = self.stack
        return opts

    def features(self, segs: List[Segment]) -> Iterator[Tuple[str, np.ndarray]]:
        """Fbank of each of ``segs`` (stacked by ``--stack``)."""
        for utt, feats in iter_fbank(segs, self.wav_scp, num_mel_bins=self.num_mel_bins,
                                     where=self.data / "wav.scp", segments=self.segments_file):
            yield utt, stack_frames(feats, self.stack)
