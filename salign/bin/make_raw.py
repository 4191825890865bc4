"""Cut the utterances of a Kaldi data dir into per-utterance 16 kHz mono audio files listed in a wav.scp (raw input).

Usage::

    # one shard (the recipe runs JOB=1..N through utils/queue/*.sh with log OUT/log/make_raw.JOB.log)
    python -m salign.bin.make_raw --data data/train --out dump/raw/train --nj N --job J
    # check all N shards and write OUT/{wav.scp, utt2num_samples, .done}
    python -m salign.bin.make_raw --data data/train --out dump/raw/train --nj N --merge
    # all shards one after another in this process, then the merge
    python -m salign.bin.make_raw --data data/train --out dump/raw/train --nj N

This is ESPnet's ``--feats_type raw`` convention (its ``scripts/audio/format_wav_scp.sh`` with ``--audio_format
flac``): each utterance is cut from its long recording (and speed-perturbed when ``utt2speed`` says so, exactly as
for fbank: :func:`salign.feats.fbank.iter_waves`) and written as one 16-bit PCM file
``OUT/splitN/format.J/<utt>.flac``; ``wav.scp`` lists them by absolute path (``utt /abs/.../utt.flac``), read by
ESPnet as ``--*_data_path_and_name_and_type wav.scp,speech,sound``, and ``utt2num_samples`` (``utt 123456``) is both
the length filter's input and ESPnet's raw ``speech_shape``. Unperturbed samples are stored exactly (the recordings
are 16-bit); perturbed ones are rounded to 16 bits and clipped to its range.

Sharding, temporary names, stamps and the merge checks are those of ``make_fbank`` (:mod:`salign.feats.shards`):
shard J writes ``OUT/splitN/{format.J/, wav.J.scp, utt2num_samples.J}`` and a ``wav.J.done`` stamp last.
"""
from __future__ import annotations

from typing import Optional, Sequence

from salign.feats.raw_dump import RawDump
from salign.feats.shards import shard_main
from salign.utils.io import run_cli


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: one shard (``--job``), the merge (``--merge``), or all shards then the merge."""
    return shard_main(argv, RawDump, __doc__)


if __name__ == "__main__":
    run_cli(main)
