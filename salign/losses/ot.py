"""AI-STA: inner-layer speech-text alignment by entropic optimal transport, ``--align ot``.

For each configured textual-encoder layer the speech and transcript hidden-state sequences of every sentence are two
uniform point clouds (weights ``1/n`` on real positions, 0 on padding), compared with the entropic OT cost

    ``OT_ε(a, b) = min_P <P, C> + ε·KL(P ‖ a⊗b)``  over plans P with marginals a, b,

solved by log-domain Sinkhorn, vectorised over the batch (padding enters as ``log a = -inf``). With ``debias: true``
(default) the loss is the Sinkhorn divergence ``S_ε = OT_ε(x, y) − ½OT_ε(x, x) − ½OT_ε(y, y)``, which is 0 for
identical sets and positive otherwise (Feydy et al., 2019); ``debias: false`` gives the plain ``OT_ε``.

Gradients: by default (``unroll: false``) the Sinkhorn iterations run without autograd and the loss is evaluated as
``<P, C> + ε·KL(P ‖ a⊗b)`` with the converged plan P held constant, so its gradient with respect to the cost is P --
the exact gradient of ``OT_ε`` at convergence (envelope theorem) at the memory cost of one iteration. ``unroll: true``
back-propagates through every iteration of the dual value ``<a, f> + <b, g>`` instead.

Layers (``layers``, 1-based; ``0`` is the textual-encoder input before positions: the adapted speech sequence and
``sqrt(d)·E[x]``) and per-layer ``weights`` (default: equal, summing to 1) can be read from the YAML written by
``python -m salign.bin.select_layers`` via ``layers_file`` (relative paths: to the working directory), which
overrides ``layers`` (and ``weights`` if it has them). Cost: ``sqeuclidean`` ``‖x − y‖²`` (of L2-normalised vectors
when ``normalize: true``) or ``cosine`` ``1 − cos(x, y)``. Statistics: ``loss_ot`` (weighted sum over layers, before
``weight``), ``ot_l<k>`` per layer and ``ot_transport_l<k>`` (``<P, C>``, what POT's ``sinkhorn2`` reports).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from typeguard import typechecked

from salign.losses.abs_align import AbsAlign, AlignBatch, Stats
from salign.losses.registry import register
from salign.utils.tensor import length_mask

COSTS = ("sqeuclidean", "cosine")


def read_layers_file(path: str) -> Tuple[List[int], Optional[List[float]]]:
    """Read ``{layers: [...], weights: [...]}`` (weights optional) as written by ``salign.bin.select_layers``."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"align_conf.layers_file {path}: no such file (fix: run python -m "
                                "salign.bin.select_layers first, or drop layers_file and set align_conf.layers)")
    with p.open(encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list) or not data["layers"]:
        raise ValueError(f"align_conf.layers_file {path}: needs a non-empty list `layers:` "
                         "(fix: regenerate it with python -m salign.bin.select_layers)")
    weights = data.get("weights")
    return [int(x) for x in data["layers"]], ([float(w) for w in weights] if weights is not None else None)


def cost_matrix(x: torch.Tensor, y: torch.Tensor, cost: str = "sqeuclidean") -> torch.Tensor:
    """Pairwise cost (B, N, M) between x (B, N, D) and y (B, M, D)."""
    if cost == "cosine":
        return 1.0 - F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).transpose(1, 2)
    if cost == "sqeuclidean":
        d = (x * x).sum(-1)[:, :, None] + (y * y).sum(-1)[:, None, :] - 2.0 * x @ y.transpose(1, 2)
        return d.clamp(min=0.0)
    raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")


def log_marginals(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform log-weights over the True positions of a (B, N) mask (``-inf`` elsewhere)."""
    n = mask.sum(-1, keepdim=True).clamp(min=1).to(dtype)
    return torch.where(mask, -torch.log(n), torch.full_like(n, float("-inf")).expand_as(mask))


def sinkhorn_potentials(cost: torch.Tensor, log_a: torch.Tensor, log_b: torch.Tensor, epsilon: float,
                        n_iters: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Log-domain Sinkhorn on a batch: dual potentials f (B, N), g (B, M) of ``OT_ε`` (alternate exact updates)."""
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    for _ in range(n_iters):
        f = -epsilon * torch.logsumexp(log_b[:, None, :] + (g[:, None, :] - cost) / epsilon, dim=2)
        g = -epsilon * torch.logsumexp(log_a[:, :, None] + (f[:, :, None] - cost) / epsilon, dim=1)
    return f, g


def transport_plan(cost: torch.Tensor, f: torch.Tensor, g: torch.Tensor, log_a: torch.Tensor,
                   log_b: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``P_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)`` (0 on padding)."""
    return torch.exp(log_a[:, :, None] + log_b[:, None, :] + (f[:, :, None] + g[:, None, :] - cost) / epsilon)


def entropic_ot(x: torch.Tensor, x_mask: torch.Tensor, y: torch.Tensor, y_mask: torch.Tensor,
                epsilon: float = 0.1, n_iters: int = 50, cost: str = "sqeuclidean", unroll: bool = False
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Entropic OT between the real positions of each pair of sequences, uniform marginals.

    Args:
        x: (B, N, D), y: (B, M, D); x_mask (B, N), y_mask (B, M): True on real positions.

    Returns:
        (``OT_ε`` per sentence (B,), transport cost ``<P, C>`` per sentence (B,)). Sentences with no real position on
        either side get 0.
    """
    dtype = torch.promote_types(x.dtype, torch.float32)  # half precision is too coarse for Sinkhorn
    c = cost_matrix(x.to(dtype), y.to(dtype), cost)
    pair = x_mask[:, :, None] & y_mask[:, None, :]
    c = torch.where(pair, c, torch.zeros_like(c))  # padded entries never matter; keep them finite
    log_a, log_b = log_marginals(x_mask, dtype), log_marginals(y_mask, dtype)
    valid = x_mask.any(-1) & y_mask.any(-1)
    if unroll:
        f, g = sinkhorn_potentials(c, log_a, log_b, epsilon, n_iters)
        a, b = log_a.exp(), log_b.exp()
        value = (a * f).sum(-1) + (b * g).sum(-1)
        plan = transport_plan(c, f, g, log_a, log_b, epsilon)
        transport = (plan * c).sum((1, 2))
    else:
        with torch.no_grad():
            cd = c.detach()
            f, g = sinkhorn_potentials(cd, log_a, log_b, epsilon, n_iters)
            plan = transport_plan(cd, f, g, log_a, log_b, epsilon)
            # ε·KL(P ‖ a⊗b) = Σ P (f + g − C)
            kl = (plan * (f[:, :, None] + g[:, None, :] - cd)).sum((1, 2))
        transport = (plan * c).sum((1, 2))
        value = transport + kl
    zero = torch.zeros_like(value)
    return torch.where(valid, value, zero), torch.where(valid, transport, zero)


def sinkhorn_divergence(x: torch.Tensor, x_mask: torch.Tensor, y: torch.Tensor, y_mask: torch.Tensor,
                        epsilon: float = 0.1, n_iters: int = 50, cost: str = "sqeuclidean", debias: bool = True,
                        unroll: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """``S_ε(x, y)`` per sentence (or ``OT_ε`` when not ``debias``) and the transport cost ``<P, C>`` of (x, y)."""
    xy, transport = entropic_ot(x, x_mask, y, y_mask, epsilon, n_iters, cost, unroll)
    if not debias:
        return xy, transport
    xx, _ = entropic_ot(x, x_mask, x, x_mask, epsilon, n_iters, cost, unroll)
    yy, _ = entropic_ot(y, y_mask, y, y_mask, epsilon, n_iters, cost, unroll)
    return xy - 0.5 * xx - 0.5 * yy, transport


@register("ot")
class OTAlign(AbsAlign):
    """Sinkhorn alignment of speech and transcript hidden states at selected textual-encoder layers (``--align ot``)."""

    needs_layers = True

    @typechecked
    def __init__(self, dim: int, layers: Sequence[int] = (1,), weights: Optional[Sequence[float]] = None,
                 layers_file: Optional[str] = None, weight: float = 1.0, cost: str = "cosine",
                 epsilon: float = 0.1, n_iters: int = 50, debias: bool = True, normalize: bool = False,
                 unroll: bool = False, start: int = 0) -> None:
        """Configure the loss (every argument is an ``align_conf`` key; ``dim`` is given by the task).

        Args:
            layers: textual-encoder layers to align, 1-based; 0 is the encoder input.
            weights: per-layer weights (default equal, summing to 1).
            layers_file: YAML from ``salign.bin.select_layers``; overrides ``layers`` (and ``weights`` if present).
            weight: scale of the summed OT loss in the model loss.
            cost: ``sqeuclidean`` or ``cosine``.
            epsilon: entropic regularisation ε (in cost units).
            n_iters: Sinkhorn iterations.
            debias: use the Sinkhorn divergence (0 for identical sets) instead of ``OT_ε``.
            normalize: L2-normalise hidden states before the cost (scale-free ``sqeuclidean``).
            unroll: back-propagate through the iterations instead of using the envelope gradient.
            start: update from which the loss is on.
        """
        super().__init__()
        if layers_file:
            layers, file_weights = read_layers_file(layers_file)
            if file_weights is not None:
                weights = file_weights
            elif weights is not None and len(weights) != len(layers):
                weights = None
        layers = [int(x) for x in layers]
        if not layers or min(layers) < 0:
            raise ValueError(f"align_conf.layers must be a non-empty list of layer numbers >= 0, got {layers}")
        if weights is None:
            weights = [1.0 / len(layers)] * len(layers)
        if len(weights) != len(layers):
            raise ValueError(f"align_conf.weights ({len(weights)}) must match align_conf.layers ({len(layers)})")
        if cost not in COSTS:
            raise ValueError(f"align_conf.cost must be one of {COSTS}, got {cost!r}")
        if epsilon <= 0 or n_iters < 1:
            raise ValueError("align_conf.epsilon must be > 0 and n_iters >= 1")
        self.dim = dim
        self.layers, self.weights = layers, [float(w) for w in weights]
        self.weight, self.cost, self.epsilon, self.n_iters = weight, cost, epsilon, n_iters
        self.debias, self.normalize, self.unroll, self.start = debias, normalize, unroll, start

    def layer_pair(self, batch: AlignBatch, layer: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Speech and transcript hidden states at ``layer`` (0: encoder inputs; k: output of block k)."""
        if layer == 0:
            if batch.speech_input is None or batch.text_tokens is None or batch.host is None:
                raise ValueError("align_conf.layers has 0 (encoder input) but the batch has no speech_input/"
                                 "text_tokens/host")
            return batch.speech_input, batch.host.embed_tokens(batch.text_tokens.clamp(min=0))
        n = min(len(batch.speech_layers), len(batch.text_layers))
        if layer > n:
            raise ValueError(f"align_conf.layers has {layer} but the textual encoder returned {n} layers "
                             "(fix: choose layers in 0..num_blocks, or re-run select_layers for this model)")
        return batch.speech_layers[layer - 1], batch.text_layers[layer - 1]

    def forward(self, batch: AlignBatch) -> Tuple[torch.Tensor, Stats]:
        """``weight · Σ_k w_k · mean_b S_ε(speech_k, text_k)`` and per-layer statistics."""
        s_mask = length_mask(batch.speech_lengths, batch.speech.size(1))
        t_mask = length_mask(batch.text_lengths, batch.text.size(1))
        total = batch.speech.new_zeros((), dtype=torch.float32)
        stats: Stats = {}
        for layer, w in zip(self.layers, self.weights):
            xs, xt = self.layer_pair(batch, layer)
            xs, xt = xs[:, : s_mask.size(1)], xt[:, : t_mask.size(1)]
            if self.normalize:
                xs, xt = F.normalize(xs, dim=-1), F.normalize(xt, dim=-1)
            div, transport = sinkhorn_divergence(xs, s_mask, xt, t_mask, self.epsilon, self.n_iters, self.cost,
                                                 self.debias, self.unroll)
            value = div.mean()
            total = total + w * value
            stats[f"ot_l{layer}"] = value.detach()
            stats[f"ot_transport_l{layer}"] = transport.mean().detach()
        stats["loss_ot"] = total.detach()
        scale = self.weight if batch.num_updates >= self.start else 0.0
        return scale * total, stats
