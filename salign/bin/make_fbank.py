"""Extract 80-dim Kaldi fbank features for a Kaldi data dir into ark/scp shards, then merge them with global CMVN.

Usage::

    # one shard (the recipe runs JOB=1..N through utils/queue/*.sh with log OUT/log/make_fbank.JOB.log)
    python -m salign.bin.make_fbank --data data/train --out dump/fbank/train --nj N --job J
    # check all N shards and write OUT/{feats.scp, utt2num_frames, cmvn.npz, .done}
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

from typing import Optional, Sequence

from salign.feats.fbank_dump import FbankDump
from salign.feats.shards import shard_main
from salign.utils.io import run_cli


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: one shard (``--job``), the merge (``--merge``), or all shards then the merge."""
    return shard_main(argv, FbankDump, __doc__)


if __name__ == "__main__":
    run_cli(main)
