"""Pooled per-layer sentence representations of a trained model's two branches on a dev set (analysis tools' input).

The model and the data come through the decoding loader (:mod:`salign.decode.loader`), as ``st_inference`` reads
them: :func:`~salign.decode.loader.load_model`, ESPnet's streaming iterator for the speech (``kaldi_ark`` features or
``sound`` audio, too-short utterances flagged) and the model's own preprocessor for the transcripts.

Layer numbering is the one ``align_conf.layers`` of ``--align ot`` uses: ``0`` is the textual-encoder input before
positions (the adapted, shrunk speech sequence; ``sqrt(d)·E[x]`` for the transcript), ``k`` the output of block ``k``.
``top`` is the encoder's final (normalised) output, the one the decoder reads. Sentences are mean-pooled over real
positions.

A speech-LLM model (:mod:`salign.llm`, a config with ``lm:``) is read the same way (the loader builds it with its
own task, ``LLMSTTask``): layer ``0`` is the LM input (projected speech frames; the transcript's token embeddings),
``k`` the output of LM block ``k``, each branch behind its own prompt (``st`` for speech, ``mt`` for the transcript),
pooled over the input segment only -- the layers ``--align ot`` compares on the LLM.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from espnet.nets.pytorch_backend.nets_utils import pad_list

from salign.data.kaldi import iter_table, read_table
from salign.decode.jobs import write_keys
from salign.decode.loader import load_model, speech_items, text_items
from salign.utils.io import InputError
from salign.utils.tensor import masked_mean

# (speech top (B,S,D), speech lengths, text top (B,L,D), text lengths) for each batch
BatchHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3", ".sph")
Pair = Tuple[str, torch.Tensor, torch.Tensor]  # (utt-id, speech (T, ...), source token ids (L,))


def add_model_data_args(parser: argparse.ArgumentParser) -> None:
    """The options shared by the analysis tools: trained model, dev set, batching."""
    parser.add_argument("--st_train_config", required=True, help="config.yaml of the trained model")
    parser.add_argument("--st_model_file", required=True, help="model .pth (e.g. valid.acc.ave.pth)")
    parser.add_argument("--feats", required=True,
                        help="feats.scp (kaldi_ark fbank) or wav.scp (raw audio, --feats_type raw) of the dev set")
    parser.add_argument("--src_text", required=True, help="Kaldi text file of the transcripts (utt-id text)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_utts", type=int, default=0, help="use at most this many utterances (0: all)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")


def is_sound_scp(path: str) -> bool:
    """True for a wav.scp of audio files (``utt /path/x.flac``, ESPnet's ``sound`` type), not a Kaldi feats.scp."""
    first = next(iter_table(path), None)  # (line, key, value) of the first entry
    return first is not None and Path(first[2]).suffix.lower() in AUDIO_SUFFIXES


def read_pairs(model, train_args, feats: str, src_text: str, max_utts: int = 0) -> Tuple[List[Pair], List[str]]:
    """(pairs, skipped): (utt-id, speech, token ids) of the utterances in both files, sorted by id (the first
    ``max_utts``), read by the decoding loader; ``skipped`` lists those too short to encode or with no token."""
    if not Path(feats).is_file():
        raise InputError("no such file", feats, fix="pass the dev set's feats.scp or wav.scp to --feats")
    texts = read_table(src_text, fix="pass the dev set's transcript file to --src_text")
    keys = sorted(k for k in read_table(feats) if k in texts)
    if not keys:
        raise InputError(f"no utterance id is in both {feats} and {src_text}", feats,
                         fix="pass the feats.scp and transcript of the same data directory")
    keys = keys[:max_utts] if max_utts > 0 else keys
    sound = is_sound_scp(feats)
    with tempfile.TemporaryDirectory() as tmp:
        key_file = str(write_keys(Path(tmp) / "keys", keys))
        try:
            speech = dict(speech_items(model, train_args, [(feats, "speech", "sound" if sound else "kaldi_ark")],
                                       key_file))
        except Exception as exc:  # kaldiio and soundfile raise many types on a bad file
            raise InputError(f"cannot read the speech data ({type(exc).__name__}: {exc})", feats) from None
    for k, x in speech.items():
        if x is not None and x.dim() != (1 if sound else 2):
            raise InputError(f"features of {k} have shape {tuple(x.shape)}, expected "
                             + ("(samples,): mono audio" if sound else "(frames, dims)"), feats)
    ids = dict(text_items(train_args, src_text, set(keys)))
    pairs = [(k, speech[k], ids[k]) for k in keys if speech.get(k) is not None and ids.get(k) is not None]
    return pairs, [k for k in keys if speech.get(k) is None or ids.get(k) is None]


@dataclass
class Representations:
    """Pooled (N, D) sentence representations per layer (0..num_blocks) and at the top, for both branches."""

    keys: List[str]
    speech: List[torch.Tensor]
    text: List[torch.Tensor]
    speech_top: torch.Tensor
    text_top: torch.Tensor
    skipped: List[str] = field(default_factory=list)

    @property
    def num_layers(self) -> int:
        """Number of layer indices (num_blocks + 1, the input included)."""
        return len(self.speech)


def _pad(seqs: List[torch.Tensor], value: float, device: str) -> Tuple[torch.Tensor, torch.Tensor]:
    return pad_list(seqs, value).to(device), torch.tensor([len(s) for s in seqs], device=device)


def _encode(model, task: str, x_in: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """(top, per-layer outputs) of one branch: the shared T-enc, or the LLM behind the branch's prompt."""
    branch = getattr(model, "encode_branch", None)
    if branch is not None:
        return branch(task, x_in, lengths)
    return model.text_encode(x_in, lengths, return_layers=True)


@torch.no_grad()
def collect_representations(model, pairs: Sequence[Pair], batch_size: int = 16, device: str = "cpu",
                            on_batch: Optional[BatchHook] = None, skipped: Sequence[str] = ()) -> Representations:
    """Run both branches of the (eval-mode) model over the pairs (batches of similar speech length) and mean-pool
    every layer. An utterance whose speech ends up empty after the encoder is skipped too (listed in ``skipped``)."""
    model.eval()
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][1]))
    keys: List[str] = []
    skipped = list(skipped)
    sp_layers: List[List[torch.Tensor]] = []
    tx_layers: List[List[torch.Tensor]] = []
    sp_top: List[torch.Tensor] = []
    tx_top: List[torch.Tensor] = []
    for start in range(0, len(order), batch_size):
        idx = order[start: start + batch_size]
        feats, flens = _pad([pairs[i][1] for i in idx], 0.0, device)
        aenc, alens = model.encode_speech(feats, flens)
        s_in, s_lens, _ = model.speech_input(aenc, alens)
        s_out, s_layers = _encode(model, "st", s_in, s_lens)
        toks, t_lens = _pad([pairs[i][2] for i in idx], -1, device)
        t_in = model.embed_tokens(toks)
        t_out, t_layers = _encode(model, "mt", t_in, t_lens)
        keep = s_lens > 0
        skipped.extend(pairs[i][0] for i, k in zip(idx, keep.tolist()) if not k)
        if not keep.any():
            continue
        if on_batch is not None:
            on_batch(s_out[keep], s_lens[keep], t_out[keep], t_lens[keep])
        keys.extend(pairs[i][0] for i, k in zip(idx, keep.tolist()) if k)
        sp_layers.append([masked_mean(h, s_lens)[keep].float().cpu() for h in [s_in] + list(s_layers)])
        tx_layers.append([masked_mean(h, t_lens)[keep].float().cpu() for h in [t_in] + list(t_layers)])
        sp_top.append(masked_mean(s_out, s_lens)[keep].float().cpu())
        tx_top.append(masked_mean(t_out, t_lens)[keep].float().cpu())
    if len(keys) < 2:
        raise InputError(f"only {len(keys)} usable utterance(s) (skipped: {len(skipped)}); retrieval needs >= 2",
                         fix="use a larger dev set with utterances long enough for the encoder's subsampling")
    n_layers = len(sp_layers[0])
    return Representations(
        keys=keys,
        speech=[torch.cat([b[i] for b in sp_layers]) for i in range(n_layers)],
        text=[torch.cat([b[i] for b in tx_layers]) for i in range(n_layers)],
        speech_top=torch.cat(sp_top), text_top=torch.cat(tx_top), skipped=skipped)


def representations_from_args(args: argparse.Namespace,
                              make_hook: Optional[Callable[[torch.nn.Module], BatchHook]] = None
                              ) -> Tuple[torch.nn.Module, Representations]:
    """Load the model and dev set named by :func:`add_model_data_args` options and collect representations.

    ``make_hook(model)`` may return a per-batch hook that sees the top outputs (e.g. to run a discriminator).
    """
    if args.batch_size < 1:
        raise InputError(f"--batch_size {args.batch_size} must be >= 1")
    model, train_args = load_model(args.st_train_config, args.st_model_file, args.device)
    pairs, skipped = read_pairs(model, train_args, args.feats, args.src_text, args.max_utts)
    hook = make_hook(model) if make_hook is not None else None
    reps = collect_representations(model, pairs, args.batch_size, args.device, hook, skipped)
    if reps.skipped:
        logging.warning("skipped %d utterance(s) with empty speech or transcript: %s", len(reps.skipped),
                        ", ".join(reps.skipped[:5]))
    return model, reps
