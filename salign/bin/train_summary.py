"""Print how training went, from ESPnet training logs: first/best/last epoch of each reported loss and accuracy.

    python -m salign.bin.train_summary exp/mt_x/train.log exp/st_y/train.log

Missing logs are skipped (a stage may have been skipped).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

KEYS = ("loss", "loss_st", "loss_mt", "loss_asr", "acc_st", "acc_mt", "disc_acc")


def epoch_stats(text: str, split: str = "train") -> List[Dict[str, float]]:
    """Statistics of each ``N epoch results`` line of an ESPnet training log, for ``split`` (train or valid)."""
    out = []
    for line in text.splitlines():
        if "epoch results" in line and f"[{split}]" in line:
            part = line.split(f"[{split}]", 1)[1].split("[", 1)[0]
            out.append({k: float(v) for k, v in re.findall(r"(\w+)=([-0-9.e+]+)", part)})
    return out


def summary(path: Path) -> Optional[str]:
    """A few lines: per key, first -> last epoch values for train and valid."""
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = [f"{path}:"]
    for split in ("train", "valid"):
        stats = epoch_stats(text, split)
        if not stats:
            continue
        parts = [f"{k} {stats[0][k]:.3f} -> {stats[-1][k]:.3f}" for k in KEYS if k in stats[0] and k in stats[-1]]
        lines.append(f"  {split} (epoch 1 -> {len(stats)}): " + ", ".join(parts))
    return "\n".join(lines) if len(lines) > 1 else f"{path}: no finished epoch yet"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print a summary per log."""
    for p in (argv if argv is not None else sys.argv[1:]):
        s = summary(Path(p))
        if s:
            print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
