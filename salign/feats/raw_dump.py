"""Stage 3, raw audio: each utterance of a data dir cut into its own 16 kHz mono 16-bit file, listed in a wav.scp.

ESPnet's ``--feats_type raw`` convention (its ``format_wav_scp.sh`` with ``--audio_format flac``); the tool and its
file layout are described in :mod:`salign.bin.make_raw`; sharding, stamps and the merge checks in
:mod:`salign.feats.shards`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import soundfile as sf

from salign.data.datadir import Segment
from salign.feats.fbank import INT16_SCALE, SAMPLE_RATE, iter_waves
from salign.feats.shards import Shard, ShardedDump
from salign.utils.io import InputError, atomic_write

__all__ = ["AUDIO_FORMATS", "RawDump", "to_pcm16"]

STAMP_VERSION = 1
AUDIO_FORMATS = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16")}


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16, rounding to the nearest step and clipping (exact for 16-bit sources)."""
    scaled = np.rint(np.asarray(wave, dtype=np.float64) * INT16_SCALE)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


class RawDump(ShardedDump):
    """Shard J: the directory ``format.J/`` of utterance files (renamed into place first: the scp points into it),
    ``wav.J.scp`` and ``utt2num_samples.J``; merged: ``wav.scp`` and ``utt2num_samples``."""

    tool = "make_raw"
    shard_files = ("format.{j}", "wav.{j}.scp", "utt2num_samples.{j}")
    shard_done = "wav.{j}.done"
    out_example = "dump/raw/train"
    merged_files = ("wav.scp", "utt2num_samples")

    @classmethod
    def add_options(cls, p: argparse.ArgumentParser) -> None:
        """``--audio_format``."""
        p.add_argument("--audio_format", default="flac", choices=sorted(AUDIO_FORMATS),
                       help="file format of the 16-bit utterance files (default flac, as ESPnet's recipes)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "RawDump":
        """The dump of the parsed options."""
        return cls(args.data, args.out.resolve(), args.nj, args.audio_format)

    def __init__(self, data: Path, out: Path, nj: int, audio_format: str = "flac") -> None:
        super().__init__(data, out, nj)
        self.audio_format = audio_format

    def options(self) -> Dict[str, object]:
        """Output options (the stamp of a shard)."""
        return {"version": STAMP_VERSION, "kind": "raw", "sr": SAMPLE_RATE, "format": self.audio_format}

    def write_shard(self, segs: List[Segment], temps: List[Path], finals: List[Path]) -> Tuple[int, float]:
        """One 16-bit file per utterance of ``segs``, their scp and sample counts."""
        for seg in segs:
            if "/" in seg.utt or seg.utt.startswith("."):
                raise InputError(f"utterance id '{seg.utt}' cannot name a file (it has '/' or starts with '.')",
                                 self.data, fix="rename the utterance in the data dir")
        fmt, subtype = AUDIO_FORMATS[self.audio_format]
        ext, audio_final = self.audio_format, finals[0].resolve()
        samples: Dict[str, int] = {}
        temps[0].mkdir()
        for seg, wave in iter_waves(segs, self.wav_scp, where=self.data / "wav.scp", segments=self.segments_file):
            sf.write(temps[0] / f"{seg.utt}.{ext}", to_pcm16(wave), SAMPLE_RATE, subtype, format=fmt)
            samples[seg.utt] = len(wave)
            self.advance()
        with temps[1].open("w", encoding="utf-8") as f:
            f.writelines(f"{u} {audio_final / f'{u}.{ext}'}\n" for u in sorted(samples))
        with temps[2].open("w", encoding="utf-8") as f:
            f.writelines(f"{u} {samples[u]}\n" for u in sorted(samples))
        return len(samples), sum(samples.values()) / SAMPLE_RATE

    def write_merged(self, shards: List[Shard]) -> str:
        """The merged ``wav.scp`` and ``utt2num_samples``."""
        scp_lines, num_lines = self.merged_rows(shards, 1), self.merged_rows(shards, 2)
        for name, lines in (("wav.scp", scp_lines), ("utt2num_samples", num_lines)):
            with atomic_write(self.out / name) as f:
                f.writelines(line + "\n" for line in lines)
        total = sum(int(line.split()[1]) for line in num_lines) / SAMPLE_RATE
        return f"{len(scp_lines)} utterances, {total:.1f} s of audio -> {self.out}/wav.scp"
