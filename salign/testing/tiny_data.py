"""A tiny synthetic ST data set (random fbank-like features + word transcripts/translations) in ESPnet's formats.

Used by the tests and benchmarks to run the real ESPnet entry points in seconds. The target is a deterministic
function of the transcript (a word-for-word dictionary), so a model can learn it.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Dict

import kaldiio
import numpy as np

SRC_WORDS = ["one", "two", "three", "red", "blue", "cat", "dog", "runs", "sleeps", "big"]
TGT_WORDS = ["uno", "dos", "tres", "rojo", "azul", "gato", "perro", "corre", "duerme", "grande"]


def make_tiny_data(root: Path, n_utts: int = 12, feat_dim: int = 80, seed: int = 0) -> Dict[str, Path]:
    """Write ``root/{feats.ark,feats.scp,text,src_text,speech_shape,text_shape,src_text_shape,tokens.txt}``.

    Each word of the transcript is rendered as a block of frames around a word-specific mean vector, so the speech
    carries the transcript. Token type is ``word`` with one joint token list.
    """
    rng = np.random.RandomState(seed)
    prng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    protos = rng.randn(len(SRC_WORDS), feat_dim).astype(np.float32) * 2.0
    feats, src, tgt = {}, {}, {}
    for i in range(n_utts):
        idx = [prng.randrange(len(SRC_WORDS)) for _ in range(prng.randint(2, 4))]
        frames = [protos[j] + 0.3 * rng.randn(prng.randint(14, 20), feat_dim).astype(np.float32) for j in idx]
        uid = f"utt{i:03d}"
        feats[uid] = np.concatenate(frames).astype(np.float32)
        src[uid] = " ".join(SRC_WORDS[j] for j in idx)
        tgt[uid] = " ".join(TGT_WORDS[j] for j in idx)
    ark, scp = root / "feats.ark", root / "feats.scp"
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as w:
        for uid in sorted(feats):
            w(uid, feats[uid])
    tokens = ["<blank>", "<unk>"] + SRC_WORDS + TGT_WORDS + ["<sos/eos>"]
    (root / "tokens.txt").write_text("\n".join(tokens) + "\n")
    for name, table in (("text", tgt), ("src_text", src)):
        (root / name).write_text("".join(f"{u} {table[u]}\n" for u in sorted(table)))
        (root / f"{name}_shape").write_text("".join(f"{u} {len(table[u].split())}\n" for u in sorted(table)))
    (root / "speech_shape").write_text("".join(f"{u} {len(feats[u])},{feat_dim}\n" for u in sorted(feats)))
    return {"root": root, "feats": scp, "text": root / "text", "src_text": root / "src_text",
            "tokens": root / "tokens.txt"}
