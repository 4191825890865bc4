"""Initialising a model's parameter groups from a pre-training checkpoint, with a report (both model families).

``--init_from_mt`` (S-Align: textual encoder, decoder and embeddings from the MT pre-training) and
``--init_from_asr`` (both families: the acoustic encoder and its CTC head from the ASR pre-training) copy whole
top-level parameter groups. Unlike ESPnet's ``--init_param`` (``strict=False``, silent), a tensor of a requested group
that the checkpoint lacks or has in another shape is an error, and every top-level group of the model is reported as
initialised from the checkpoint, or not (printed and logged, so a recipe's train.log says what each run started from).
With ``keep_tied`` (``--init_from_asr``), a tensor of a requested group that is tied to a parameter outside the
requested groups (S-Align's CTC projection is the source embedding table) is not taken: it belongs to that other group
(the MT pre-training's embeddings). ``--init_from_mt`` takes its groups whole (the embedding table is its own).
"""
from __future__ import annotations

import argparse
import logging
from typing import Dict, List, Sequence

import torch
from espnet2.utils.types import str_or_none

from salign.utils.io import InputError

__all__ = ["MT_MODULES", "ASR_MODULES", "load_groups", "add_init_from_asr", "init_from_asr"]

#: parameter groups an MT checkpoint initialises by default (the acoustic side is not trained in MT pre-training)
MT_MODULES = ("src_embed", "text_encoder", "decoder")
#: parameter groups an ASR checkpoint initialises by default: the acoustic encoder and its CTC head (a group the
#: model does not have, e.g. ``ctc`` of a speech-LLM trained without CTC, is reported and skipped)
ASR_MODULES = ("encoder", "ctc")


def load_groups(model: torch.nn.Module, path: str, modules: Sequence[str], option: str, what: str,
                fix_missing: str, fix_mismatch: str, keep_tied: bool = False) -> Dict[str, str]:
    """Copy the parameters of the top-level groups ``modules`` from checkpoint ``path`` into ``model``.

    ``option`` (e.g. ``--init_from_asr``) and ``what`` (e.g. ``ASR``) name the source in errors and in the report;
    ``fix_missing``/``fix_mismatch`` are the fixes of a missing file and of a checkpoint that does not fit. Returns
    the report: top-level group -> "initialised from WHAT (n/m tensors)", "not initialised (...)" .
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise InputError("no such file", path, fix=fix_missing) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a checkpoint.pth of ESPnet's trainer
    own = model.state_dict()
    aliases: Dict[int, List[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(p), []).append(name)
    tied_out: Dict[str, str] = {}  # key of a requested group -> its alias outside the requested groups
    for names in aliases.values() if keep_tied else ():
        outside = [n for n in names if n.split(".", 1)[0] not in modules]
        if outside:
            tied_out.update({n: min(outside, key=len) for n in names if n.split(".", 1)[0] in modules})
    taken: Dict[str, torch.Tensor] = {}
    problems = []
    for key, value in own.items():
        if key.split(".", 1)[0] not in modules or key in tied_out:
            continue
        if key not in state:
            problems.append(f"{key} missing in {path}")
        elif state[key].shape != value.shape:
            problems.append(f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(value.shape)}")
        else:
            taken[key] = state[key]
    if problems:
        raise InputError(f"{option} checkpoint does not fit this model ({len(problems)} tensors): "
                         + "; ".join(problems[:5]), path, fix=fix_mismatch)
    model.load_state_dict(taken, strict=False)
    groups: Dict[str, List[str]] = {}
    for key in own:
        groups.setdefault(key.split(".", 1)[0], []).append(key)
    report: Dict[str, str] = {}
    for group, keys in groups.items():
        n = sum(k in taken for k in keys)
        report[group] = f"initialised from {what} ({n}/{len(keys)} tensors)" if n else "not initialised (random init)"
        tied = [k for k in keys if k in tied_out]
        if tied:
            report[group] += "; kept (tied): " + ", ".join(f"{k} = {tied_out[k]}" for k in tied)
    for group in modules:
        if group not in groups:
            report[group] = "not in this model (skipped)"
    width = max(map(len, report))
    lines = [f"  {g:<{width}}  {r}" for g, r in report.items()]
    logging.info("%s %s:\n%s", option, path, "\n".join(lines))
    print(f"[salign] parameter groups after {option} {path}:\n" + "\n".join(lines), flush=True)
    return report


def add_init_from_asr(parser: argparse.ArgumentParser) -> None:
    """``--init_from_asr PATH`` and ``--init_from_asr_modules`` (a task's argument group)."""
    group = parser.add_argument_group(description="ASR pre-training")
    group.add_argument("--init_from_asr", type=str_or_none, default=None,
                       help="ASR-pretrained checkpoint (a .pth of salign's st_train trained on speech -> transcript) "
                            "to initialise the acoustic encoder and its CTC head from")
    group.add_argument("--init_from_asr_modules", type=str, nargs="+", default=list(ASR_MODULES),
                       help="parameter groups (top-level module names) taken from --init_from_asr")


def init_from_asr(model: torch.nn.Module, args: argparse.Namespace, building_from_file: bool) -> None:
    """Apply ``--init_from_asr`` when training starts (never when a trained model is rebuilt from its files)."""
    path = getattr(args, "init_from_asr", None)
    if not path or building_from_file or getattr(args, "collect_stats", False):
        return
    load_groups(model, path, getattr(args, "init_from_asr_modules", ASR_MODULES), "--init_from_asr", "ASR",
                fix_missing="run the ASR pre-training first (st.sh --pretrain_asr true), or point --init_from_asr "
                            "at its checkpoint (e.g. valid.loss.best.pth)",
                fix_mismatch="use the acoustic encoder settings (encoder, encoder_conf, input features) of the ASR "
                             "pre-training config", keep_tied=True)
