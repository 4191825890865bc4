"""Shared helpers of the benchmarks: timing, machine description, synthetic data and tiny model training."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def machine() -> Dict[str, str]:
    """nproc, CPU model, torch version and GPU presence."""
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "torch": torch.__version__, "gpu": gpu,
            "threads": str(torch.get_num_threads())}


def median_time(fn: Callable[[], object], repeats: int) -> List[float]:
    """Wall times of ``repeats`` calls of ``fn``."""
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def table(rows: List[List[str]], header: List[str]) -> str:
    """A Markdown table."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    fmt = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [fmt(r) for r in rows])


def run_module(module: str, args: Sequence[str], cwd: Path, log: str) -> None:
    """``python -m module args`` in ``cwd`` (log to ``cwd/log``); raises with the log tail on failure."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(cwd / log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=env, stdout=f,
                              stderr=subprocess.STDOUT)
    if proc.returncode:
        tail = "\n".join((cwd / log).read_text().splitlines()[-30:])
        raise RuntimeError(f"{module} failed; {cwd / log}:\n{tail}")


def long_utterances(root: Path, n_utts: int, words: Sequence[int] = (6, 12), feat_dim: int = 80,
                    seed: int = 0) -> Path:
    """Kaldi feats/text/src_text of ``n_utts`` utterances of ``words`` words each, with the word prototypes of
    :func:`salign.testing.tiny_data.make_tiny_data` (same seed), so models trained on that data recognise them."""
    import kaldiio

    from salign.testing.tiny_data import SRC_WORDS, TGT_WORDS

    rng = np.random.RandomState(seed)
    protos = rng.randn(len(SRC_WORDS), feat_dim).astype(np.float32) * 2.0
    prng = np.random.RandomState(seed + 1)
    root.mkdir(parents=True, exist_ok=True)
    src, tgt = {}, {}
    with kaldiio.WriteHelper(f"ark,scp:{root / 'feats.ark'},{root / 'feats.scp'}") as w:
        for i in range(n_utts):
            idx = prng.randint(len(SRC_WORDS), size=prng.randint(words[0], words[1] + 1))
            frames = [protos[j] + 0.3 * prng.randn(prng.randint(14, 20), feat_dim).astype(np.float32) for j in idx]
            uid = f"long{i:04d}"
            w(uid, np.concatenate(frames).astype(np.float32))
            src[uid] = " ".join(SRC_WORDS[j] for j in idx)
            tgt[uid] = " ".join(TGT_WORDS[j] for j in idx)
    for name, tab in (("text", tgt), ("src_text", src)):
        (root / name).write_text("".join(f"{u} {tab[u]}\n" for u in sorted(tab)))
    return root
