"""Stage 3, ``--feats_type whisper``: a pretrained encoder's hidden states, computed once and stored as features.

A frozen encoder costs its forward pass in every epoch of every training that reads it; here it runs once per
utterance and the recipe trains on its outputs like on fbank (``kaldi_ark`` data, global CMVN). Fine-tuning the
encoder goes through the live one instead: ``--feats_type raw`` with ``encoder: whisper`` and its ``checkpoint``
(:class:`salign.st.whisper.WhisperEncoder`; ESPnet's ``--freeze_param`` keeps its lower blocks fixed).

Shard J (1-based) of N: ``OUT/splitN/feats.J.{ark,scp}``, ``utt2num_frames.J``, ``cmvn.J.npz`` and the
``feats.J.done`` stamp (sharding, stamps and merge: :mod:`salign.feats.shards`). Merged: ``feats.scp``,
``utt2num_frames``, ``cmvn.npz`` (ESPnet's ``feats_stats.npz`` keys), as :mod:`salign.feats.fbank_dump` writes them.
The stamp holds the encoder's fingerprint (the SHA-256 of its weight files), the layer, the dtype and the padding:
another checkpoint, layer, dtype or padding extracts again.

``--padding utterance`` (the default) runs Whisper on the utterance only (:class:`salign.st.whisper.WhisperEncoder`:
masked attention, no 30 s padding); ``--padding window`` runs it as Whisper was trained, on the utterance followed by
digital silence up to its 30 s window, and keeps the utterance's frames (20 ms each either way; ~3x the time on the
mini corpus' 3-4 s clips, for no better downstream WER there: README, "Pretrained weights"). Output dtype
``float32`` (Kaldi ``FM``), or ``float16`` stored through Kaldi's 16-bit compressed matrix (``CM2``: half the disk,
one global range per matrix).
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, List, Tuple

import numpy as np
import torch
from kaldiio.matio import write_array

from salign.data.datadir import Segment
from salign.feats.fbank import SAMPLE_RATE, iter_waves
from salign.feats.fbank_dump import FeatureDump
from salign.utils.io import InputError

__all__ = ["EncoderDump", "encoder_fingerprint"]

STAMP_VERSION = 1
BATCH = 8  #: utterances per encoder call (outputs do not depend on the batch: masked attention, own padding)
DTYPES = ("float32", "float16")
PADDINGS = ("utterance", "window")  #: the utterance alone, or in Whisper's 30 s window (its frames kept)


def encoder_fingerprint(checkpoint: Path) -> str:
    """SHA-256 over the weight files of a checkpoint (a file, or a directory's ``*.safetensors``, ``*.bin``,
    ``*.pt``, ``model.bin.part*`` and ``config.json``), so the stamp changes when the weights do."""
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise InputError("no such encoder checkpoint", checkpoint,
                         fix="tools/get_pretrained.sh whisper-tiny.en, and point --feats_encoder at its directory")
    files = [checkpoint] if checkpoint.is_file() else sorted(
        f for f in checkpoint.iterdir() if f.is_file() and (f.suffix in (".safetensors", ".bin", ".pt")
                                                          or f.name.startswith("model.bin") or f.name == "config.json"))
    if not files:
        raise InputError("no weight files in this encoder checkpoint", checkpoint,
                         fix="tools/get_pretrained.sh whisper-tiny.en, and point --feats_encoder at its directory")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class EncoderDump(FeatureDump):
    """A Whisper encoder's states in fbank's dump layout (:class:`salign.feats.fbank_dump.FeatureDump`)."""

    tool = "make_encoder_feats"
    out_example = "dump/whisper/train"
    frame_shift = 0.02
    frame_note = " of 20 ms"

    @classmethod
    def add_options(cls, p: argparse.ArgumentParser) -> None:
        """``--checkpoint``, ``--layer``, ``--dtype``, ``--padding``."""
        p.add_argument("--checkpoint", type=Path, required=True,
                       help="the Whisper checkpoint (openai .pt, Hugging Face or CTranslate2 directory)")
        p.add_argument("--layer", type=int, default=-1,
                       help="1-based block whose output is stored (-1: the last, after its final LayerNorm)")
        p.add_argument("--dtype", choices=DTYPES, default="float32",
                       help="float32 (Kaldi FM) or float16 (Kaldi 16-bit compressed matrix)")
        p.add_argument("--padding", choices=PADDINGS, default="utterance",
                       help="utterance: encode the utterance alone; window: in Whisper's 30 s window padded with "
                            "silence, keeping the utterance's frames")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "EncoderDump":
        """The dump of the parsed options."""
        return cls(args.data, args.out.resolve(), args.nj, args.checkpoint, args.layer, args.dtype, args.padding)

    def __init__(self, data: Path, out: Path, nj: int, checkpoint: Path, layer: int = -1, dtype: str = "float32",
                 padding: str = "utterance") -> None:
        super().__init__(data, out, nj)
        if padding not in PADDINGS:
            raise InputError(f"padding {padding!r}: unknown", fix=f"one of {', '.join(PADDINGS)}")
        self.checkpoint, self.layer, self.dtype, self.padding = Path(checkpoint), layer, dtype, padding
        self._encoder = None
        self._fingerprint = encoder_fingerprint(self.checkpoint)

    def options(self) -> Dict[str, object]:
        """The stamp's options: the encoder's fingerprint, the layer, the dtype, the padding."""
        return {"version": STAMP_VERSION, "encoder": "whisper", "fingerprint": self._fingerprint,
                "layer": self.layer, "dtype": self.dtype, "padding": self.padding, "sr": SAMPLE_RATE}

    def encoder(self):
        """The Whisper encoder up to ``--layer`` (built once, evaluation mode)."""
        if self._encoder is None:
            from salign.st.whisper import WhisperEncoder

            self._encoder = WhisperEncoder(checkpoint=str(self.checkpoint), layer=self.layer).eval()
        return self._encoder

    def encode(self, waves: List[np.ndarray]) -> List[np.ndarray]:
        """Hidden states (T_i, width) of each wave, float32."""
        ts = [torch.from_numpy(w).float() for w in waves]
        lens = torch.tensor([len(t) for t in ts])
        keep = torch.div(torch.div(lens, 160, rounding_mode="floor") + 1, 2, rounding_mode="floor")  # 20 ms frames
        if self.padding == "window":  # zeros up to the 30 s window, encoded whole (every frame attends to all)
            window = self.encoder().max_frames * 160
            ts = [torch.nn.functional.pad(t, (0, window - len(t))) for t in ts]
            lens = torch.full_like(lens, window)
        batch = torch.nn.utils.rnn.pad_sequence(ts, batch_first=True)
        with torch.inference_mode():
            out, olens, _ = self.encoder()(batch, lens)
        olens = torch.minimum(olens.cpu(), keep)
        return [out[i, : int(olens[i])].numpy().astype(np.float32) for i in range(len(ts))]

    def write_matrix(self, ark: BinaryIO, feats: np.ndarray) -> None:
        """float32 as Kaldi ``FM``; float16 through Kaldi's 16-bit compression (one global range per matrix)."""
        if self.dtype == "float16":
            write_array(ark, feats, compression_method=3)  # kTwoByteAuto
        else:
            write_array(ark, feats)

    def features(self, segs: List[Segment]) -> Iterator[Tuple[str, np.ndarray]]:
        """Encoder states of each of ``segs``, computed ``BATCH`` utterances at a time; a wave too short for the front
        end or too long for the encoder's window is a one-line error naming it."""
        pending: List[Tuple[str, np.ndarray]] = []
        for seg, wave in iter_waves(segs, self.wav_scp, SAMPLE_RATE, self.data / "wav.scp", self.segments_file):
            if len(wave) <= 200:
                raise InputError(f"utterance '{seg.utt}' is too short for Whisper's front end ({len(wave)} "
                                 "samples, > 200 needed)", self.data / "segments",
                                 fix="drop utterances shorter than 0.1 s in data preparation")
            limit = self.encoder().max_frames * 160  # samples of the encoder's window
            if len(wave) > limit:
                raise InputError(f"utterance '{seg.utt}' ({len(wave) / SAMPLE_RATE:.2f} s) is "
                                 f"longer than the encoder's {limit / SAMPLE_RATE:g} s window",
                                 self.data / "segments", fix="segment it into shorter utterances, or drop it "
                                                             "(stage 4's --max_frames does so only later)")
            pending.append((seg.utt, wave))
            if len(pending) == BATCH:
                yield from zip((u for u, _ in pending), self.encode([w for _, w in pending]))
                pending = []
        if pending:
            yield from zip((u for u, _ in pending), self.encode([w for _, w in pending]))
