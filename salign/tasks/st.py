"""ESPnet task registration: ``SAlignSTTask`` is ESPnet's ST task building :class:`SAlignSTModel`.

Class choices (each adds ``--<name>`` and ``--<name>_conf``, listed by ``--print_config`` and saved in config.yaml):
frontend, specaug, normalize, preencoder, encoder (A-enc), text_encoder (T-enc), decoder, align, preprocessor.
Alignment methods are classes in ``salign/losses``; ``align_choices`` reads the loss package's registry
(:mod:`salign.losses.registry`), so a method registered there is a ``--align`` choice.

Task options added to ESPnet's ST ones: ``--init_from_mt PATH`` (load an MT-pretrained checkpoint into the textual
encoder, decoder and embeddings, printing which parameter groups were and were not initialised), ``--init_from_asr
PATH`` (the acoustic encoder and CTC head from the ASR pre-training; :mod:`salign.tasks.init`) and ``--lr_scale``
(a learning-rate factor per top-level module, e.g. a faster-learning fresh acoustic encoder).
"""
from __future__ import annotations

import argparse
import logging
from typing import Dict, List, Optional, Sequence

import torch
from espnet2.asr.ctc import CTC
from espnet2.asr.decoder.abs_decoder import AbsDecoder
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.encoder.transformer_encoder import TransformerEncoder
from espnet2.tasks import st as espnet_st
from espnet2.tasks.st import STTask
from espnet2.torch_utils.initialize import initialize
from espnet2.train.class_choices import ClassChoices
from espnet2.utils.get_default_kwargs import get_default_kwargs
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import str_or_none

from salign.llm.moe import MoEProjector
from salign.llm.projector import AbsProjector
from salign.losses.abs_align import AbsAlign
from salign.losses.registry import ALIGN_METHODS
from salign.st.model import SAlignSTModel
from salign.tasks.common import SpeechTaskMixin, encoder_choices, preencoder_choices, read_token_list
from salign.tasks.init import MT_MODULES, add_init_from_asr, init_from_asr, load_groups
from salign.utils.io import InputError

# decoder: ESPnet's classes, with a transformer default instead of ESPnet's RNN one (encoders: salign.tasks.common)
decoder_choices = ClassChoices(
    "decoder", classes=espnet_st.decoder_choices.classes, type_check=AbsDecoder, default="transformer")
text_encoder_choices = ClassChoices(
    "text_encoder",
    classes=dict(transformer=TransformerEncoder),
    type_check=AbsEncoder,
    default="transformer",
)
# pre-encoders: ESPnet's, plus frame stacking (a lower frame rate for the acoustic encoder)
align_choices = ClassChoices("align", classes=ALIGN_METHODS, type_check=AbsAlign, default=None, optional=True)
#: between A-enc and T-enc: none (a Linear to T-enc's width + LayerNorm, after the CTC shrink) or ``moe`` (the MoE
#: projector of the speech-LLM family, on every A-enc frame before the shrink; stack 1)
#: (``--speech_adapter``: ESPnet's own ``--adapter`` is its LoRA/Houlsby option)
adapter_choices = ClassChoices("speech_adapter", classes=dict(moe=MoEProjector), type_check=AbsProjector,
                               default=None, optional=True)
align_choices.classes = ALIGN_METHODS  # the registry itself, not a copy: a method registered later is a choice too



class SAlignSTTask(SpeechTaskMixin, STTask):
    """ESPnet's ST task with the S-Align model, a textual-encoder choice and an alignment-method choice."""

    class_choices_list = [
        espnet_st.frontend_choices,
        espnet_st.specaug_choices,
        espnet_st.normalize_choices,
        preencoder_choices,
        encoder_choices,
        text_encoder_choices,
        decoder_choices,
        align_choices,
        adapter_choices,
        espnet_st.preprocessor_choices,
    ]

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """ESPnet's ST arguments, our model's defaults for ``--model_conf``, and ``--init_from_mt``."""
        super().add_task_arguments(parser)
        parser.set_defaults(model_conf=get_default_kwargs(SAlignSTModel))
        group = parser.add_argument_group(description="S-Align")
        group.add_argument("--init_from_mt", type=str_or_none, default=None,
                           help="MT-pretrained checkpoint (a .pth of this task trained on text) to initialise from")
        group.add_argument("--init_from_mt_modules", type=str, nargs="+", default=list(MT_MODULES),
                           help="parameter groups (top-level module names) taken from --init_from_mt")
        add_init_from_asr(parser)
        group.add_argument("--lr_scale", action=NestedDictAction, default={},
                           help="learning-rate factor per top-level module, e.g. {encoder: 4.0, speech_proj: 4.0}: "
                                "freshly initialised parts (the acoustic encoder) learn faster than the MT-pretrained "
                                "ones; the scheduler scales every group alike")

    @classmethod
    def build_optimizers(cls, args: argparse.Namespace, model: torch.nn.Module) -> List[torch.optim.Optimizer]:
        """ESPnet's optimizer, with one parameter group per ``--lr_scale`` factor (lr x factor)."""
        scale = dict(getattr(args, "lr_scale", None) or {})
        if not scale:
            return super().build_optimizers(args, model)
        names = {n for n, _ in model.named_children()}
        unknown = sorted(set(scale) - names)
        if unknown:
            raise InputError(f"--lr_scale names no module of the model: {', '.join(unknown)}",
                             fix=f"use top-level module names: {', '.join(sorted(names))}")
        from espnet2.tasks.abs_task import optim_classes

        try:
            scale = {k: float(v) for k, v in scale.items()}
        except (TypeError, ValueError):
            raise InputError(f"--lr_scale {scale}: factors must be numbers",
                             fix="e.g. --lr_scale '{encoder: 4.0}'") from None
        # a tied parameter (e.g. CTC output = source embedding) takes the factor of any module of it that has one
        factor: Dict[int, float] = {}
        params: Dict[int, torch.nn.Parameter] = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            params.setdefault(id(p), p)
            top = name.split(".")[0]
            if top in scale or id(p) not in factor:
                factor[id(p)] = scale.get(top, factor.get(id(p), 1.0))
        groups: Dict[float, List[torch.nn.Parameter]] = {}
        for pid, p in params.items():
            groups.setdefault(factor[pid], []).append(p)
        conf = dict(args.optim_conf)
        lr = conf.pop("lr", 1e-3)
        param_groups = [{"params": ps, "lr": lr * f} for f, ps in sorted(groups.items())]
        logging.info("--lr_scale: %s", ", ".join(f"x{f}: {sum(p.numel() for p in ps)} parameters"
                                                  for f, ps in sorted(groups.items())))
        return [optim_classes[args.optim](param_groups, lr=lr, **conf)]

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> SAlignSTModel:
        """Build :class:`SAlignSTModel` from the parsed arguments (or a saved config.yaml)."""
        token_list = read_token_list(args.token_list)
        args.token_list = list(token_list)
        if args.src_token_list is None:
            raise ValueError("--src_token_list is required by the S-Align model (pass the target list for a "
                             "joint vocabulary)")
        src_token_list = read_token_list(args.src_token_list)
        args.src_token_list = list(src_token_list)

        frontend, specaug, normalize, input_size = cls.build_front_end(args)
        preencoder, input_size = cls.build_preencoder(args, input_size)
        encoder = cls.build_encoder(encoder_choices, args, input_size)

        tconf = dict(args.text_encoder_conf)
        dim = tconf.pop("output_size", encoder.output_size())
        tconf.pop("input_size", None)
        tconf["input_layer"] = None
        text_encoder = text_encoder_choices.get_class(args.text_encoder)(input_size=dim, output_size=dim, **tconf)
        decoder = decoder_choices.get_class(args.decoder)(
            vocab_size=len(token_list), encoder_output_size=dim, **args.decoder_conf)
        ctc = CTC(odim=len(src_token_list), encoder_output_size=encoder.output_size(), **args.ctc_conf)
        model_conf = dict(args.model_conf)
        st_ctc = (CTC(odim=len(token_list), encoder_output_size=dim, **args.ctc_conf)
                  if model_conf.get("st_ctc_weight", 0.0) > 0 else None)
        align = None
        if getattr(args, "align", None) is not None:
            align = align_choices.get_class(args.align)(dim=dim, **args.align_conf)

        adapter = None
        if getattr(args, "speech_adapter", None) is not None:
            adapter = adapter_choices.get_class(args.speech_adapter)(input_size=encoder.output_size(),
                                                                     output_size=dim, **args.speech_adapter_conf)
        model = SAlignSTModel(
            vocab_size=len(token_list), token_list=token_list, src_vocab_size=len(src_token_list),
            src_token_list=src_token_list, frontend=frontend, specaug=specaug, normalize=normalize,
            preencoder=preencoder, encoder=encoder, text_encoder=text_encoder, decoder=decoder, ctc=ctc,
            align=align, st_ctc=st_ctc, adapter=adapter, **model_conf)
        if args.init is not None:
            initialize(model, args.init)
        model.clock.accum_grad = int(getattr(args, "accum_grad", 1) or 1)
        init_mt = getattr(args, "init_from_mt", None)
        if init_mt and not cls._building_from_file and not getattr(args, "collect_stats", False):
            load_mt_checkpoint(model, init_mt, getattr(args, "init_from_mt_modules", MT_MODULES))
        init_from_asr(model, args, cls._building_from_file)
        cls.resolve_tied_freeze(model, args)
        return model


def load_mt_checkpoint(model: torch.nn.Module, path: str, modules: Sequence[str] = MT_MODULES) -> Dict[str, str]:
    """Copy the parameters of ``modules`` from an MT checkpoint into ``model``; log and return a per-group report
    (:func:`salign.tasks.init.load_groups`)."""
    return load_groups(model, path, modules, "--init_from_mt", "MT",
                       fix_missing="run the MT pre-training stage first, or point --init_from_mt at its checkpoint "
                                   "(e.g. valid.acc.best.pth)",
                       fix_mismatch="use the same text_encoder/decoder/token_list settings as the MT pre-training "
                                    "config")


def register_with_espnet() -> None:
    """Make ESPnet's own ``espnet2.bin.st_inference`` (``Speech2Text``, ``inference``) build salign models.

    ``Speech2Text`` hard-codes ``STTask``; after this call it uses :class:`SAlignSTTask`. The documented one-liner::

        import salign.tasks.st as t; t.register_with_espnet()
        # then Speech2Text(st_train_config=..., st_model_file=...)

    The patched module builds salign models only (stock ESPnet ST configs lack ``text_encoder``), so use a separate
    process to decode stock models.
    """
    import espnet2.bin.st_inference as st_inference

    st_inference.STTask = SAlignSTTask


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """Training entry point (``python -m salign.bin.st_train``)."""
    import sys

    try:
        SAlignSTTask.main(cmd=cmd)
    except InputError as exc:  # bad user input: one line, no traceback
        print(f"ERROR [st_train]: {exc}", file=sys.stderr)
        sys.exit(2)
