"""Cross-modal retrieval per textual-encoder layer, and the representations it is computed on (AI-STA layer choice).

Layer numbering is the one ``align_conf.layers`` of ``--align ot`` uses: ``0`` is the textual-encoder input before
positions (the adapted, shrunk speech sequence; ``sqrt(d)·E[x]`` for the transcript), ``k`` the output of block ``k``.
``top`` is the encoder's final (normalised) output, the one the decoder reads. Sentences are mean-pooled over real
positions; retrieval ranks the cosine similarity of each speech sentence against every transcript of the set.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from salign.losses.abs_align import masked_mean
from salign.utils.io import InputError

# (speech top (B,S,D), speech lengths, text top (B,L,D), text lengths) for each batch
BatchHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], None]


# ------------------------------------------------------------------------------------------------ retrieval math
def cosine_matrix(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """(N, N) cosine similarities of paired sets: row i is query i, column j key j."""
    return F.normalize(queries.double(), dim=-1) @ F.normalize(keys.double(), dim=-1).t()


def retrieval_ranks(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """0-based rank of each query's own key (key i for query i); ties count against the query."""
    sim = cosine_matrix(queries, keys)
    own = sim.diagonal()
    others = sim >= own[:, None]
    others.fill_diagonal_(False)
    return others.sum(-1)


def recall_at_k(queries: torch.Tensor, keys: torch.Tensor, ks: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """``{"r1": ..., "r5": ...}``: fraction of queries whose own key is among their k most similar keys."""
    ranks = retrieval_ranks(queries, keys)
    return {f"r{k}": float((ranks < k).float().mean()) for k in ks}


def layer_retrieval(speech: Sequence[torch.Tensor], text: Sequence[torch.Tensor]) -> Dict[int, Dict[str, float]]:
    """Speech→text R@1/R@5 for each layer index of two lists of pooled (N, D) representations."""
    return {i: recall_at_k(s, t) for i, (s, t) in enumerate(zip(speech, text))}


def select_top_layers(scores: Dict[int, Dict[str, float]], top_k: int, weighting: str = "uniform",
                      candidates: Optional[Sequence[int]] = None) -> Tuple[List[int], List[float]]:
    """The ``top_k`` layers by R@1 (then R@5, then the shallower layer), with their weights.

    ``weighting``: ``uniform`` (1/k each) or ``r1`` (proportional to R@1; uniform if all are 0). Weights sum to 1.
    """
    pool = [layer for layer in scores if candidates is None or layer in candidates]
    if not 1 <= top_k <= len(pool):
        raise InputError(f"--top_k {top_k} must be between 1 and the number of candidate layers ({len(pool)})")
    ranked = sorted(pool, key=lambda layer: (-scores[layer]["r1"], -scores[layer]["r5"], layer))[:top_k]
    if weighting == "r1" and sum(scores[layer]["r1"] for layer in ranked) > 0:
        total = sum(scores[layer]["r1"] for layer in ranked)
        weights = [scores[layer]["r1"] / total for layer in ranked]
    elif weighting in ("uniform", "r1"):
        weights = [1.0 / top_k] * top_k
    else:
        raise InputError(f"--weighting {weighting!r}: choose uniform or r1")
    return ranked, weights


# ------------------------------------------------------------------------------------------------ model and data
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


def load_model(config: str, model_file: str, device: str = "cpu"):
    """``SAlignSTTask.build_model_from_file`` in eval mode; returns (model, train_args)."""
    from salign.tasks.st import SAlignSTTask

    for flag, path in (("--st_train_config", config), ("--st_model_file", model_file)):
        if not Path(path).is_file():
            raise InputError("no such file", path, fix=f"pass the trained model's file to {flag}")
    try:
        model, train_args = SAlignSTTask.build_model_from_file(config, model_file, device)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot build the model from this config/model pair: {first}", model_file,
                         fix="use the config.yaml written next to the .pth by st_train") from None
    return model.eval(), train_args


def read_text(path: str) -> Dict[str, str]:
    """A Kaldi ``utt-id text`` file as a dict."""
    if not Path(path).is_file():
        raise InputError("no such file", path, fix="pass the dev set's transcript file to --src_text")
    out: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(maxsplit=1)
            if not parts:
                continue
            if parts[0] in out:
                raise InputError(f"utterance {parts[0]!r} appears twice", path, lineno)
            out[parts[0]] = parts[1] if len(parts) > 1 else ""
    return out


AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3", ".sph")


def is_sound_scp(path: str) -> bool:
    """True for a wav.scp of audio files (``utt /path/x.flac``, ESPnet's ``sound`` type), not a Kaldi feats.scp."""
    with open(path, encoding="utf-8") as f:
        first = f.readline().split(maxsplit=1)
    return len(first) == 2 and Path(first[1].strip()).suffix.lower() in AUDIO_SUFFIXES


def read_pairs(feats: str, src_text: str, max_utts: int = 0) -> List[Tuple[str, np.ndarray, str]]:
    """(utt-id, speech, transcript) for the utterances present in both files, sorted by id.

    ``feats`` is a Kaldi feats.scp (speech: features (T, F)) or a wav.scp of audio files (speech: samples (T,),
    read with ESPnet's ``sound`` loader as in training).
    """
    import kaldiio

    if not Path(feats).is_file():
        raise InputError("no such file", feats, fix="pass the dev set's feats.scp or wav.scp to --feats")
    texts = read_text(src_text)
    try:
        sound = is_sound_scp(feats)
        if sound:
            from espnet2.train.dataset import sound_loader

            scp = sound_loader(feats, float_dtype="float32")
        else:
            scp = kaldiio.load_scp(feats)
        keys = sorted(k for k in scp.keys() if k in texts)
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise InputError(f"not a Kaldi scp file ({exc})", feats) from None
    if not keys:
        raise InputError(f"no utterance id is in both {feats} and {src_text}", feats,
                         fix="pass the feats.scp and transcript of the same data directory")
    if max_utts > 0:
        keys = keys[:max_utts]
    pairs = []
    for k in keys:
        try:
            arr = np.asarray(scp[k], dtype=np.float32)
        except Exception as exc:  # kaldiio raises many types on a bad ark
            raise InputError(f"cannot read features of {k}: {exc}", feats) from None
        if arr.ndim != (1 if sound else 2):
            raise InputError(f"features of {k} have shape {arr.shape}, expected "
                             + ("(samples,): mono audio" if sound else "(frames, dims)"), feats)
        pairs.append((k, arr, texts[k]))
    return pairs


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


def _pad(seqs: List[torch.Tensor], value: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs])
    return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=value), lengths


@torch.no_grad()
def collect_representations(model, train_args, pairs: Sequence[Tuple[str, np.ndarray, str]], batch_size: int = 16,
                            device: str = "cpu", on_batch: Optional[BatchHook] = None) -> Representations:
    """Run both branches of the (eval-mode) model over the pairs and mean-pool every layer.

    Transcripts are tokenised with the model's own preprocessor. Utterances whose speech or transcript ends up empty
    (too short for the subsampling, or no known token) are skipped and listed in ``skipped``.
    """
    from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError

    from salign.tasks.st import SAlignSTTask

    preprocess = SAlignSTTask.build_preprocess_fn(train_args, False)
    model.eval()
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][1]))
    keys: List[str] = []
    skipped: List[str] = []
    sp_layers: List[List[torch.Tensor]] = []
    tx_layers: List[List[torch.Tensor]] = []
    sp_top: List[torch.Tensor] = []
    tx_top: List[torch.Tensor] = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids = []
        for i in idx:
            key, _, line = pairs[i]
            tok = preprocess(key, {"src_text": line})["src_text"] if preprocess is not None else None
            ids.append(torch.as_tensor(np.asarray(tok, dtype=np.int64)) if tok is not None else None)
        if any(t is None for t in ids):
            raise InputError("the model's config has use_preprocessor: false, so transcripts cannot be tokenised",
                             fix="analyse a model trained with ESPnet's default preprocessor")
        feats, flens = _pad([torch.tensor(pairs[i][1]) for i in idx])
        try:
            aenc, alens = model.encode_speech(feats.to(device), flens.to(device))
        except TooShortUttError:
            skipped.extend(pairs[i][0] for i in idx)
            continue
        s_in, s_lens, _ = model.speech_input(aenc, alens)
        s_out, s_layers = model.text_encode(s_in, s_lens, return_layers=True)
        toks, t_lens = _pad([t if len(t) else torch.zeros(0, dtype=torch.long) for t in ids], value=-1)
        toks, t_lens = toks.long().to(device), t_lens.to(device)
        t_in = model.embed_tokens(toks)
        t_out, t_layers = model.text_encode(t_in, t_lens, return_layers=True)
        keep = (s_lens > 0) & (t_lens > 0)
        skipped.extend(pairs[i][0] for i, k in zip(idx, keep.tolist()) if not k)
        if not keep.any():
            continue
        if on_batch is not None:
            on_batch(s_out[keep], s_lens[keep], t_out[keep], t_lens[keep])
        keys.extend(pairs[i][0] for i, k in zip(idx, keep.tolist()) if k)
        s_all = [s_in] + list(s_layers)
        t_all = [t_in] + list(t_layers)
        sp_layers.append([masked_mean(h, s_lens)[keep].float().cpu() for h in s_all])
        tx_layers.append([masked_mean(h, t_lens)[keep].float().cpu() for h in t_all])
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
    pairs = read_pairs(args.feats, args.src_text, args.max_utts)
    hook = make_hook(model) if make_hook is not None else None
    reps = collect_representations(model, train_args, pairs, args.batch_size, args.device, hook)
    if reps.skipped:
        logging.warning("skipped %d utterance(s) with empty speech or transcript: %s", len(reps.skipped),
                        ", ".join(reps.skipped[:5]))
    return model, reps
