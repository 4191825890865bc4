"""Stage 3 with ``--feats_type whisper``: a pretrained Whisper encoder's hidden states stored as features (ark/scp
shards + global CMVN), computed once so that every epoch of every training reads them instead of running the
encoder.

Usage::

    python -m salign.bin.make_encoder_feats --data data/train --out dump/whisper/train --nj N --job J \
        --checkpoint tools/pretrained/whisper-tiny.en [--layer -1] [--dtype float32|float16] \
        [--padding utterance|window]
    python -m salign.bin.make_encoder_feats --data data/train --out dump/whisper/train --nj N --merge --checkpoint ...

Shards, stamps (with the encoder's fingerprint, layer, dtype and padding) and the merge as ``make_fbank``.
"""
from __future__ import annotations

from typing import Optional, Sequence

from salign.feats.encoder_dump import EncoderDump
from salign.feats.shards import shard_main
from salign.utils.io import run_cli


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: one shard (``--job``), the merge (``--merge``), or all shards then the merge."""
    return shard_main(argv, EncoderDump, __doc__)


if __name__ == "__main__":
    run_cli(main)
