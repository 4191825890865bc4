"""Modality-gap measures between pooled speech and transcript representations, and their plots.

* ``discriminator``: accuracy of each adversarial modal network of the model (``--align adversarial`` or inside
  ``--align multi``) on the top outputs, as in training (weighted by real positions at token/window level).
* ``retrieval``: speech→text R@1/R@5 per layer (see :mod:`salign.analysis.retrieval`).
* ``cosine``: mean cosine of paired (same utterance) vs unpaired (different utterances) pooled sentences; ``gap`` is
  their difference (large = the modalities share a space where pairs are close).
* ``cka``: linear CKA of the paired speech and text matrices (1 = same geometry up to rotation/scale).
* ``mmd``: squared RBF-kernel MMD between the two sets (biased V-statistic, median-heuristic bandwidth;
  0 = indistinguishable distributions), on L2-normalised vectors so layers of different scales compare.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from salign.analysis.representations import Representations
from salign.analysis.retrieval import layer_retrieval, recall_at_k
from salign.utils.io import atomic_write
from salign.utils.tensor import binary_hits


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear centred kernel alignment of paired rows, ``‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F)`` after centring."""
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    num = (y.t() @ x).pow(2).sum()
    den = (x.t() @ x).norm() * (y.t() @ y).norm()
    return float(num / den) if den > 0 else 0.0


def rbf_mmd2(x: torch.Tensor, y: torch.Tensor, sigma: Optional[float] = None) -> Tuple[float, float]:
    """Biased squared MMD with ``k(u, v) = exp(-‖u − v‖² / (2σ²))``; σ defaults to the median pairwise distance.

    Returns (MMD², σ used).
    """
    x, y = x.double(), y.double()
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    if sigma is None:
        off = d2[~torch.eye(len(z), dtype=torch.bool)]
        med = off.median().sqrt().item() if off.numel() else 1.0
        sigma = med if med > 0 else 1.0
    k = torch.exp(-d2 / (2.0 * sigma ** 2))
    n = len(x)
    mmd = k[:n, :n].mean() + k[n:, n:].mean() - 2.0 * k[:n, n:].mean()
    return float(mmd.clamp(min=0.0)), float(sigma)


def cosine_stats(speech: torch.Tensor, text: torch.Tensor) -> Dict[str, float]:
    """Mean cosine of paired and of unpaired (speech i, text j≠i) sentences, and their difference."""
    sim = F.normalize(speech.double(), dim=-1) @ F.normalize(text.double(), dim=-1).t()
    n = len(sim)
    paired = sim.diagonal().mean()
    unpaired = (sim.sum() - sim.diagonal().sum()) / max(1, n * n - n)
    return {"paired": float(paired), "unpaired": float(unpaired), "gap": float(paired - unpaired)}


def pca_2d(x: torch.Tensor) -> torch.Tensor:
    """Project rows onto their first two principal components (N, 2)."""
    x = x.double() - x.double().mean(0)
    _, _, vt = torch.linalg.svd(x, full_matrices=False)
    proj = x @ vt[:2].t()
    if proj.size(1) < 2:
        proj = torch.cat([proj, torch.zeros(len(x), 2 - proj.size(1), dtype=proj.dtype)], 1)
    return proj


class DiscriminatorProbe:
    """Accumulates the accuracy of the model's adversarial modal networks over batches (a ``BatchHook``)."""

    def __init__(self, model: torch.nn.Module) -> None:
        """Find every ``AdversarialAlign`` under ``model.align``."""
        from salign.losses.adversarial import AdversarialAlign

        self.modules: Dict[str, AdversarialAlign] = {}
        align = getattr(model, "align", None)
        if align is not None:
            for name, mod in align.named_modules():
                if isinstance(mod, AdversarialAlign):
                    self.modules[name.split(".")[-1] or "align"] = mod
        self.counts = {name: [0.0, 0.0, 0.0, 0.0] for name in self.modules}  # correct/total speech, text

    @torch.no_grad()
    def __call__(self, s_out: torch.Tensor, s_lens: torch.Tensor, t_out: torch.Tensor, t_lens: torch.Tensor) -> None:
        """Score one batch of top outputs."""
        for name, mod in self.modules.items():
            mod.eval()
            for j, (h, lens, label) in enumerate(((s_out, s_lens, mod.speech_label), (t_out, t_lens, mod.text_label))):
                correct, counted = binary_hits(*mod.disc(h, lens), label > 0.5)
                self.counts[name][2 * j] += float(correct)
                self.counts[name][2 * j + 1] += float(counted)

    def results(self) -> Optional[Dict[str, Dict[str, float]]]:
        """``{name: {acc, acc_speech, acc_text}}`` or None when the model has no modal network."""
        if not self.modules:
            return None
        out = {}
        for name, (cs, ns, ct, nt) in self.counts.items():
            a_s, a_t = cs / max(ns, 1.0), ct / max(nt, 1.0)
            out[name] = {"acc": (a_s + a_t) / 2, "acc_speech": a_s, "acc_text": a_t}
        return out


def analyze(reps: Representations, probe: Optional[DiscriminatorProbe] = None,
            mmd_sigma: Optional[float] = None) -> Dict:
    """All measures as a JSON-ready dict (layer keys are strings: ``"0"``..``"N"`` and ``"top"``)."""
    retrieval = {str(k): v for k, v in layer_retrieval(reps.speech, reps.text).items()}
    retrieval["top"] = recall_at_k(reps.speech_top, reps.text_top)
    pairs = list(zip([str(i) for i in range(reps.num_layers)], reps.speech, reps.text))
    pairs.append(("top", reps.speech_top, reps.text_top))
    cos, cka, mmd = {}, {}, {}
    for name, s, t in pairs:
        cos[name] = cosine_stats(s, t)
        cka[name] = linear_cka(s, t)
        value, sigma = rbf_mmd2(F.normalize(s, dim=-1), F.normalize(t, dim=-1), mmd_sigma)
        mmd[name] = {"mmd2": value, "sigma": sigma}
    return {
        "n_utts": len(reps.keys),
        "n_skipped": len(reps.skipped),
        "layers": [str(i) for i in range(reps.num_layers)] + ["top"],
        "discriminator": probe.results() if probe is not None else None,
        "retrieval": retrieval,
        "cosine": cos,
        "cka": cka,
        "mmd": mmd,
    }


def _save(fig, path: Path) -> None:
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)


def plot_pca(reps: Representations, path: Path) -> None:
    """2-D PCA (fitted on both modalities together) of the top pooled outputs, paired points joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(reps.keys)
    proj = pca_2d(torch.cat([reps.speech_top, reps.text_top])).numpy()
    fig, ax = plt.subplots(figsize=(5, 5))
    for i in range(n):
        ax.plot([proj[i, 0], proj[n + i, 0]], [proj[i, 1], proj[n + i, 1]], color="0.8", lw=0.5, zorder=1)
    ax.scatter(proj[:n, 0], proj[:n, 1], s=12, label="speech", zorder=2)
    ax.scatter(proj[n:, 0], proj[n:, 1], s=12, marker="x", label="text", zorder=2)
    ax.set_title("pooled top T-enc outputs (PCA)")
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_retrieval(result: Dict, path: Path) -> None:
    """Speech→text R@1 and R@5 per layer (0 = T-enc input), with the top output as a last point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: List[str] = result["layers"]
    xs = list(range(len(names)))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key in ("r1", "r5"):
        ax.plot(xs, [result["retrieval"][n][key] for n in names], marker="o", label=key.upper().replace("R", "R@"))
    ax.set_xticks(xs)
    ax.set_xticklabels(names)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("T-enc layer")
    ax.set_ylabel("speech→text recall")
    ax.legend()
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
