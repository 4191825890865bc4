"""Routing statistics of a trained MoE speech projector on a test set (the code-switch recipe's routing table).

One forward pass of the speech encoder and the projector (no LM, no decoding) over every utterance of a set, in
length-sorted batches; the same quantities :meth:`salign.llm.moe.MoEProjector.aux_losses` logs per batch in
training, accumulated over the whole set (frames, not batches, are averaged):

* ``route_<lang>``: share of the valid stacked frames labelled ``<lang>`` (``lang_frames``: the corpus spans at the
  projector's frame rate, -1 in pauses) whose argmax group is ``<lang>``'s group; ``frames_<lang>`` their number;
* ``route_all``: the same over all labelled frames;
* ``load_e<i>``: share of valid frames whose argmax group and argmax expert in it is expert ``i``
  (``i = group · experts_per_group + e``); ``group_<lang>``: share of valid frames whose argmax group is ``<lang>``;
* ``entropy``: mean group-router entropy over the valid frames (nats; ``ln G`` = no preference).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import torch

from salign.data.kaldi import read_table
from salign.utils.io import InputError, PathLike


def _frames(model: torch.nn.Module, feats: List[torch.Tensor]) -> torch.Tensor:
    """Encoder + projector over one batch of feature matrices (the projector keeps the routing)."""
    lengths = torch.tensor([f.size(0) for f in feats])
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    enc, enc_lens = model.encode_speech(x, lengths)
    _, lens = model.projector(enc, enc_lens)
    return lens


@torch.no_grad()
def routing_stats(model: torch.nn.Module, feats_scp: PathLike, lang_frames: PathLike, batch_size: int = 16
                  ) -> Optional[Dict[str, float]]:
    """The module docstring's statistics of ``model``'s projector on the utterances of ``feats_scp`` (Kaldi ark
    features) labelled by ``lang_frames`` (``text_int``); None when the projector has no routing (not ``moe``)."""
    import kaldiio

    from salign.llm.moe import IGNORE_LANG, MoEProjector

    proj = getattr(model, "projector", None)
    if not isinstance(proj, MoEProjector):
        return None
    scp = read_table(feats_scp, fix="run stages 3-4 (features) first")
    labels = read_table(lang_frames, fix="run stage 1 (data preparation) first")
    missing = sorted(set(scp) - set(labels))
    if missing:
        raise InputError(f"no language labels for {len(missing)} utterance(s), e.g. '{missing[0]}'", lang_frames,
                         fix="run stage 1 (data preparation) again")
    mats = {k: torch.from_numpy(kaldiio.load_mat(v).copy()).float() for k, v in scp.items()}
    order = sorted(mats, key=lambda k: mats[k].size(0))
    g, e = proj.num_groups, proj.num_experts
    right, total = torch.zeros(g), torch.zeros(g)
    load, group = torch.zeros(e), torch.zeros(g)
    entropy, n = 0.0, 0
    for i in range(0, len(order), batch_size):
        keys = order[i: i + batch_size]
        _frames(model, [mats[k] for k in keys])
        r = proj.last_route
        mask = r["mask"]
        rows = [torch.tensor([int(x) for x in labels[k].split()], dtype=torch.long) for k in keys]
        lab = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=IGNORE_LANG)
        lab = proj.frame_labels(mask, lang_frames=lab).reshape(-1)
        valid = mask.reshape(-1)
        logp, p_exp, lab = r["group_logp"][valid], r["p_expert"][valid], lab[valid]
        top_g = logp.argmax(-1)
        top_e = p_exp.gather(1, top_g[:, None, None].expand(-1, 1, p_exp.size(-1))).squeeze(1).argmax(-1)
        load += torch.bincount(top_g * proj.experts_per_group + top_e, minlength=e).float()
        group += torch.bincount(top_g, minlength=g).float()
        known = lab != IGNORE_LANG
        total += torch.bincount(lab[known], minlength=g).float()
        right += torch.bincount(lab[known][top_g[known] == lab[known]], minlength=g).float()
        entropy += float(-(logp.exp() * logp).sum(-1).sum())
        n += int(valid.sum())
    out: Dict[str, float] = {"frames": float(n), "entropy": entropy / max(n, 1), "max_entropy": math.log(g)}
    for j, name in enumerate(proj.groups):
        out[f"frames_{name}"] = float(total[j])
        out[f"route_{name}"] = float(right[j] / total[j]) if total[j] > 0 else float("nan")
        out[f"group_{name}"] = float(group[j] / max(n, 1))
    out["route_all"] = float(right.sum() / total.sum()) if total.sum() > 0 else float("nan")
    for j in range(e):
        out[f"load_e{j}"] = float(load[j] / max(n, 1))
    return out
