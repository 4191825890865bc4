"""Cross-modal retrieval per textual-encoder layer (AI-STA layer choice).

Retrieval ranks the cosine similarity of each pooled speech sentence against every transcript of the set; layer
numbering and the pooled representations are those of :mod:`salign.analysis.representations`.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from salign.utils.io import InputError


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
