"""Mixture-of-Experts speech projector with language expert groups (code-switch ST, ``docs/method.md`` §3).

``--projector moe`` (``projector_conf``: every knob below, the auxiliary-loss weights included). The formulas, the
defaults and what is not there yet are in ``docs/moe.md``; in short, for a stacked frame ``x``::

    p(g | x)     = softmax_g(W_grp x + b)                     group router, one group per language in ``groups``
    p(e | g, x)  = softmax_e(W_g x + b_g)                     expert router inside group g (``experts_per_group``)
    w(e | g, x)  = p(e|g,x) / Σ_{e' ∈ topk_g} p(e'|g,x)       for e in the group's top-k, else 0 (``renormalize``)
    a(g | x)     = p(g|x)                                      group_routing: soft
                 = 1[g = argmax p] (forward), ∇ of p(g|x)      group_routing: top1 (straight-through)
    y            = Σ_g a(g|x) Σ_e w(e|g,x) · expert_{g,e}(x)   expert = Linear -> activation -> dropout -> Linear

Dispatch loops over the experts, never over frames: each expert runs once on the frames that selected it
(``index_select`` / ``index_add``), so an expert no frame selected gets no gradient; padding frames are never
dispatched (their output is zero) and count in no loss or statistic.

Auxiliary losses (weighted by the model, see :meth:`MoEProjector.aux_losses`):

* ``loss_lang`` (``lang_weight``): cross-entropy of the group router against the frames' language,
  ``-mean_{labelled valid frames} log p(y_t | x_t)``.
* ``loss_balance`` (``balance_weight``): Switch-style balance inside each group over the frames whose argmax group
  is g (``R_g``): ``E_g · Σ_e f_{g,e} P_{g,e}``, averaged over the groups with frames; 1 at uniform load.
* ``loss_transition`` (``transition_weight``, ``transition_from``): KL of the previous training stage's frozen group
  routing to this one's on the same frames (training only; ``egs/cs_mini`` uses it in its code-switch stage).

Language labels (ids are positions in ``groups``; -1 = unknown, ignored), in the order of precedence:

1. ``lang_frames`` (B, T'') int batch field: one label per *stacked* frame (the projector's frame rate). Frame ``t``
   covers ``[t·s, (t+1)·s)`` seconds with ``s = encoder frame period × stack`` (e.g. 10 ms fbank hop × 4 for a
   ``conv2d`` encoder input layer × ``stack`` 2 = 80 ms; HuBERT's 20 ms × ``stack`` 4 = 80 ms);
   :func:`frame_labels_from_spans` turns (start, end, language) spans in seconds into such a row. Rows longer than
   the projector's frames are cut, shorter ones padded with -1 (ESPnet pads the batch with -1 too).
2. ``lang`` (B,) or (B, 1) int batch field: one label per utterance, given to all its valid frames.
3. neither, ``lang_from_src_lang: true`` and the model's ``src_lang`` names a group: every frame of the (monolingual
   ST/ASR) batch is labelled ``src_lang``.
4. none of these: no language loss (``loss_lang`` and ``route_acc`` are absent from the stats, not zero).

Both batch fields are ESPnet data files read as ``text_int`` (``utt_id 0`` / ``utt_id 0 0 1 1 -1``), optional
training data of both tasks (``--train_data_path_and_name_and_type lang_frames,lang_frames,text_int``).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch

from salign.llm.projector import AbsProjector

ACTIVATIONS = {"gelu": torch.nn.GELU, "relu": torch.nn.ReLU, "silu": torch.nn.SiLU}
IGNORE_LANG = -1


def frame_labels_from_spans(spans: Sequence[Tuple[float, float, int]], num_frames: int,
                            frame_shift: float) -> torch.Tensor:
    """Language spans in seconds -> one label per stacked frame (``num_frames``,), -1 where unknown.

    ``spans``: ``(start_s, end_s, lang_id)`` with ``lang_id`` the position in ``projector_conf.groups``;
    ``frame_shift``: seconds per stacked frame (encoder frame period × ``stack``). Frame ``t`` takes the language of
    the span containing its centre ``(t + 0.5) · frame_shift`` (half-open ``[start, end)``); a centre inside no span
    or inside spans of two different languages gets -1.
    """
    if frame_shift <= 0:
        raise ValueError(f"frame_shift must be > 0 seconds, got {frame_shift}")
    centre = (torch.arange(num_frames, dtype=torch.float64) + 0.5) * frame_shift
    labels = torch.full((num_frames,), IGNORE_LANG, dtype=torch.long)
    conflict = torch.zeros(num_frames, dtype=torch.bool)
    for start, end, lang in spans:
        inside = (centre >= start) & (centre < end)
        conflict |= inside & (labels != IGNORE_LANG) & (labels != int(lang))
        labels[inside] = int(lang)
    labels[conflict] = IGNORE_LANG
    return labels


class MoEProjector(AbsProjector):
    """Frame stacking, then a two-level MoE: a group (language) router, then top-k experts inside each group."""

    def __init__(self, input_size: int, output_size: int, stack: int = 1, groups: Sequence[str] = ("en", "es"),
                 experts_per_group: int = 4, top_k: int = 2, hidden_size: int = 0, activation: str = "gelu",
                 dropout: float = 0.0, group_routing: str = "soft", renormalize: bool = True,
                 lang_weight: float = 0.1, balance_weight: float = 0.01, lang_from_src_lang: bool = True,
                 transition_weight: float = 0.0, transition_from: Optional[str] = None) -> None:
        """``groups``: one expert group per language (names as ``model_conf.src_lang``); ``experts_per_group``
        experts each, ``top_k`` (1 <= k <= experts_per_group) of them used per frame and group; expert = Linear
        (``hidden_size``, 0 = ``output_size``) -> ``activation`` -> ``dropout`` -> Linear. ``group_routing``: soft
        (every group, weighted by the group router) or top1 (the argmax group only, straight-through gradient).
        ``renormalize``: the top-k weights of a group sum to one (with ``top_k: 1`` the expert router then learns
        from the balance loss only). ``lang_weight``, ``balance_weight``: the auxiliary losses' weights (0 = the
        loss is still logged but not trained). ``lang_from_src_lang``: without ``lang``/``lang_frames`` in the batch,
        label every frame with the model's ``src_lang``. ``transition_weight``, ``transition_from``: the transition
        loss towards the previous training stage's projector, read from that stage's model file (see
        :meth:`aux_losses`; loaded at the first training forward, never for decoding)."""
        super().__init__(input_size, output_size, stack)
        if transition_weight < 0 or (transition_weight > 0 and not transition_from):
            raise ValueError("projector_conf.transition_weight > 0 needs transition_from: the previous stage's model "
                             "file (and the weight must be >= 0)")
        groups = list(groups)
        if len(groups) < 1 or len(set(groups)) != len(groups):
            raise ValueError(f"projector_conf.groups must be distinct language names, got {groups}")
        if experts_per_group < 1 or not 1 <= top_k <= experts_per_group:
            raise ValueError(f"projector_conf: need 1 <= top_k ({top_k}) <= experts_per_group ({experts_per_group})")
        if activation not in ACTIVATIONS:
            raise ValueError(f"projector_conf.activation {activation!r}: use one of {sorted(ACTIVATIONS)}")
        if group_routing not in ("soft", "top1"):
            raise ValueError(f"projector_conf.group_routing {group_routing!r}: use soft or top1")
        self.groups: List[str] = groups
        self.num_groups, self.experts_per_group, self.top_k = len(groups), experts_per_group, top_k
        self.group_routing, self.renormalize = group_routing, renormalize
        self.lang_weight, self.balance_weight = lang_weight, balance_weight
        self.lang_from_src_lang = lang_from_src_lang
        d_in, hidden = input_size * stack, hidden_size or output_size
        self.group_router = torch.nn.Linear(d_in, self.num_groups)
        self.expert_router = torch.nn.Linear(d_in, self.num_groups * experts_per_group)
        # expert i = group i // experts_per_group, index i % experts_per_group inside it
        self.experts = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(d_in, hidden), ACTIVATIONS[activation](), torch.nn.Dropout(dropout),
                                torch.nn.Linear(hidden, output_size))
            for _ in range(self.num_groups * experts_per_group))
        self.last_route: Optional[Dict[str, torch.Tensor]] = None
        self.last_aux: Dict[str, torch.Tensor] = {}
        self.transition_weight, self.transition_from = transition_weight, transition_from
        self._previous: List["MoEProjector"] = []  # the previous stage's frozen copy (a list: not a submodule)

    def previous_stage(self) -> "MoEProjector":
        """The previous stage's projector, frozen: this module's architecture with the parameters of
        ``transition_from``'s (the model file's keys ending in this projector's parameter names, under one prefix:
        ``projector.`` in a speech LLM, ``adapter.`` in S-Align)."""
        if not self._previous:
            from salign.utils.io import InputError

            try:
                state = torch.load(self.transition_from, map_location="cpu", weights_only=False)
            except FileNotFoundError:
                raise InputError("no such model file (projector_conf.transition_from)", self.transition_from,
                                 fix="train the previous stage first, or point transition_from at its model file"
                                 ) from None
            own = self.state_dict()
            for prefix in ("projector.", "adapter.", ""):
                sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and k[len(prefix):] in own}
                if set(sub) == set(own):
                    break
            else:
                raise InputError("the model file has no MoE projector of this shape (projector.* / adapter.* keys)",
                                 self.transition_from, fix="point transition_from at the previous stage's model "
                                 "file, trained with the same projector_conf")
            import copy

            route, aux, self.last_route, self.last_aux = self.last_route, self.last_aux, None, {}
            try:  # (the last forward's routing is part of the autograd graph: not copied)
                prev = copy.deepcopy(self)
            finally:
                self.last_route, self.last_aux = route, aux
            prev._previous, prev.transition_weight = [], 0.0
            prev.load_state_dict(sub)
            prev.requires_grad_(False).eval()
            self._previous.append(prev)
        prev = self._previous[0]
        device = next(self.parameters()).device
        if next(prev.parameters()).device != device:
            prev.to(device)
        return prev

    @property
    def num_experts(self) -> int:
        """All experts, over all groups."""
        return self.num_groups * self.experts_per_group

    # ------------------------------------------------------------------------------------------------ routing
    def route(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Routing of (N, D) frames: group log-probs (N, G), expert probs (N, G, E_g), the combined weight of every
        expert (N, G·E_g) and which experts each frame is dispatched to (N, G·E_g, bool)."""
        n, g, eg = x.size(0), self.num_groups, self.experts_per_group
        group_logp = torch.log_softmax(self.group_router(x).float(), dim=-1)
        p_group = group_logp.exp()
        p_expert = torch.softmax(self.expert_router(x).float().view(n, g, eg), dim=-1)
        top_p, top_i = p_expert.topk(self.top_k, dim=-1)
        if self.renormalize:
            top_p = top_p / top_p.sum(-1, keepdim=True)
        within = torch.zeros_like(p_expert).scatter(-1, top_i, top_p)
        chosen = torch.zeros_like(p_expert, dtype=torch.bool).scatter(-1, top_i, True)
        if self.group_routing == "soft":
            group_w = p_group
            group_sel = torch.ones_like(p_group, dtype=torch.bool)
        else:
            hard = torch.nn.functional.one_hot(p_group.argmax(-1), g).to(p_group.dtype)
            group_w = hard + p_group - p_group.detach()  # forward: the argmax group; backward: the soft router's
            group_sel = hard.bool()
        weights = (group_w[:, :, None] * within).reshape(n, g * eg)
        dispatch = (group_sel[:, :, None] & chosen).reshape(n, g * eg)
        return dict(group_logp=group_logp, p_expert=p_expert, weights=weights, dispatch=dispatch)

    def project(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, T', D) stacked frames (``mask`` (B, T'): valid ones; all if None) -> (B, T', output_size); the routing
        of the valid frames is kept in :attr:`last_route` for :meth:`aux_losses`."""
        b, t, d = x.shape
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=x.device)
        flat = x.reshape(b * t, d)
        valid = mask.reshape(b * t)
        r = self.route(flat)
        dispatch = r["dispatch"] & valid[:, None]
        out = None
        for i, expert in enumerate(self.experts):
            idx = dispatch[:, i].nonzero().squeeze(1)
            if idx.numel() == 0:
                continue  # never called: no gradient reaches this expert
            y = expert(flat.index_select(0, idx))
            y = y * r["weights"].index_select(0, idx)[:, i: i + 1].to(y.dtype)
            out = (flat.new_zeros(b * t, self.out_size, dtype=y.dtype) if out is None else out).index_add(0, idx, y)
        if out is None:
            out = flat.new_zeros(b * t, self.out_size)
        self.last_route = dict(r, mask=mask)
        if self.training and self.transition_weight > 0:
            with torch.no_grad():
                self.last_route["prev_group_logp"] = self.previous_stage().route(flat)["group_logp"]
        return out.view(b, t, self.out_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, T, input_size), lengths -> (B, ceil(T/k), output_size) and ceil(lengths/k); padding frames are 0."""
        x, lengths = self.stacker(x, lengths)
        mask = torch.arange(x.size(1), device=x.device)[None] < lengths.to(x.device)[:, None]
        return self.project(x, mask), lengths

    # ------------------------------------------------------------------------------------------------ losses
    def frame_labels(self, mask: torch.Tensor, lang: Optional[torch.Tensor] = None,
                     lang_frames: Optional[torch.Tensor] = None, src_lang: Optional[str] = None
                     ) -> Optional[torch.Tensor]:
        """Language label of every stacked frame (B, T'), -1 where unknown or padding; None without any labels
        (see the module docstring for the precedence of ``lang_frames``, ``lang`` and ``src_lang``)."""
        b, t = mask.shape
        if lang_frames is not None:
            lab = lang_frames.to(device=mask.device, dtype=torch.long).reshape(b, -1)[:, :t]
            if lab.size(1) < t:
                lab = torch.nn.functional.pad(lab, (0, t - lab.size(1)), value=IGNORE_LANG)
        elif lang is not None:
            lab = lang.to(device=mask.device, dtype=torch.long).reshape(b, -1)[:, :1].expand(b, t)
        elif self.lang_from_src_lang and src_lang is not None:
            if src_lang not in self.groups:
                raise ValueError(f"model_conf.src_lang {src_lang!r} names no group of projector_conf.groups "
                                 f"{self.groups}: add it there or set projector_conf.lang_from_src_lang: false")
            lab = torch.full((b, t), self.groups.index(src_lang), dtype=torch.long, device=mask.device)
        else:
            return None
        if bool((lab >= self.num_groups).any()) or bool((lab < IGNORE_LANG).any()):
            raise ValueError(f"language ids must be -1 (unknown) or 0..{self.num_groups - 1} (positions in "
                             f"projector_conf.groups {self.groups}), got {sorted(set(lab.flatten().tolist()))}")
        return lab.masked_fill(~mask, IGNORE_LANG)

    def aux_losses(self, lang: Optional[torch.Tensor] = None, lang_frames: Optional[torch.Tensor] = None,
                   src_lang: Optional[str] = None
                   ) -> Tuple[Dict[str, Tuple[float, torch.Tensor]], Dict[str, torch.Tensor]]:
        """Auxiliary losses of the last forward as ``name -> (weight, loss)`` and statistics to log (also in
        :attr:`last_aux`); valid frames only.

        * ``loss_lang`` = ``-1/|L| Σ_{t∈L} log p(y_t | x_t)`` over the labelled valid frames ``L`` (absent without
          labels), ``route_acc`` = share of ``L`` whose argmax group is ``y_t``;
        * ``loss_balance`` = ``1/|G'| Σ_{g∈G'} E_g Σ_e f_{g,e} P_{g,e}``, ``R_g`` = valid frames whose argmax group is
          g, ``G'`` = groups with ``R_g`` non-empty, ``f_{g,e}`` = share of ``R_g`` whose argmax expert in g is e,
          ``P_{g,e}`` = mean ``p(e | g, x)`` over ``R_g`` (only P carries gradient, as in Switch);
        * ``router_entropy`` = mean group-router entropy (nats), ``load_e{i}`` = share of valid frames whose argmax
          group and argmax expert in it is expert i (i = group · experts_per_group + e), ``group_{name}`` = share of
          valid frames whose argmax group is that language.

        * ``loss_transition`` (training, ``transition_weight`` > 0) = ``1/N Σ_t KL(p_prev(g | x_t) || p(g | x_t))``
          over the valid frames: the group routing of the previous stage's frozen projector
          (``transition_from``) on the same frames, which this stage's group router is kept close to while the data
          shifts (e.g. monolingual -> code-switched, with earlier-stage data replayed in the batches); 0 when the
          two projectors are equal.
        """
        r = self.last_route
        if r is None:
            raise RuntimeError("MoEProjector.aux_losses needs a forward pass first")
        mask = r["mask"]
        valid = mask.reshape(-1)
        group_logp, p_expert = r["group_logp"][valid], r["p_expert"][valid]
        p_group = group_logp.exp()
        n = group_logp.size(0)
        losses: Dict[str, Tuple[float, torch.Tensor]] = {}
        stats: Dict[str, torch.Tensor] = {}
        top_group = group_logp.argmax(-1)

        labels = self.frame_labels(mask, lang, lang_frames, src_lang)
        if labels is not None:
            lab = labels.reshape(-1)[valid]
            known = lab != IGNORE_LANG
            if bool(known.any()):
                nll = -group_logp[known].gather(1, lab[known, None]).squeeze(1)
                losses["loss_lang"] = (self.lang_weight, nll.mean())
                stats["route_acc"] = (top_group[known] == lab[known]).float().mean().detach()

        in_group = torch.nn.functional.one_hot(top_group, self.num_groups).to(p_expert.dtype)  # (n, G)
        top_expert = torch.nn.functional.one_hot(p_expert.argmax(-1), self.experts_per_group).to(p_expert.dtype)
        count = in_group.sum(0)  # |R_g|
        frac = torch.einsum("ng,nge->ge", in_group, top_expert) / count.clamp(min=1)[:, None]
        prob = torch.einsum("ng,nge->ge", in_group, p_expert) / count.clamp(min=1)[:, None]
        per_group = self.experts_per_group * (frac * prob).sum(-1)
        present = (count > 0).to(per_group.dtype)
        losses["loss_balance"] = (self.balance_weight, (per_group * present).sum() / present.sum().clamp(min=1))
        if "prev_group_logp" in r:
            prev_logp = r["prev_group_logp"][valid]
            kl = (prev_logp.exp() * (prev_logp - group_logp)).sum(-1)
            losses["loss_transition"] = (self.transition_weight, kl.mean() if n else kl.sum())

        stats["router_entropy"] = (-(p_group * group_logp).sum(-1)).mean().detach() if n else p_group.new_zeros(())
        load = torch.einsum("ng,nge->ge", in_group, top_expert).reshape(-1) / max(n, 1)
        for i in range(self.num_experts):
            stats[f"load_e{i}"] = load[i].detach()
        for g, name in enumerate(self.groups):
            stats[f"group_{name}"] = (count[g] / max(n, 1)).detach()
        self.last_aux = {**{k: v.detach() for k, (_, v) in losses.items()}, **stats}
        return losses, stats
