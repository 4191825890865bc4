"""ESPnet task registration of the speech-LLM family: ``LLMSTTask`` (a subclass of ESPnet's ``STTask``).

Class choices (each adds ``--<name>`` and ``--<name>_conf``, listed by ``--print_config`` and saved in config.yaml):
frontend, specaug, normalize, preencoder (``stack``), encoder (ESPnet's encoders + ``hubert``, ``whisper``, and
``identity``: cached pretrained-encoder states, e.g. ``--feats_type whisper``, passed straight to the projector),
projector (``linear``, ``mlp``, ``moe``: language expert groups, salign/llm/moe.py), lm (``tiny``: our small causal
LM over ``--token_list``; ``hf``: a local Hugging Face causal LM, frozen/full/LoRA), align (the loss package's
registry: ``ot`` between speech and transcript states at chosen LM layers -- AI-STA -- or any other method,
composable with ``multi``; ``align_conf.layers_file`` reads ``select_layers``' output).

Tokenisation: with ``--lm tiny`` ESPnet's own preprocessor maps ``text``/``src_text`` through ``--token_list`` /
``--bpemodel`` (one joint list: the transcript is LM input too); with ``--lm hf`` the task's preprocessor is
:class:`salign.llm.preprocess.HFTokenizerPreprocessor` (the LM's tokenizer, from ``lm_conf.path``) and
``--token_list`` is neither needed nor kept (one given is ignored: config.yaml records none, so decoding and packing
never need one). ESPnet's trainer, ``--resume``, checkpoint averaging and ``--ngpu`` work unchanged.
"""
from __future__ import annotations

import argparse
import logging
from typing import Callable, Dict, Optional, Sequence

import numpy as np
from espnet2.asr.ctc import CTC
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.tasks import st as espnet_st
from espnet2.tasks.st import STTask
from espnet2.torch_utils.initialize import initialize
from espnet2.train.class_choices import ClassChoices
from espnet2.utils.get_default_kwargs import get_default_kwargs

from salign.encoders.identity import IdentityEncoder
from salign.llm.hf_lm import HFCausalLM
from salign.llm.lm import AbsCausalLM, TinyCausalLM
from salign.llm.model import SpeechLLMModel
from salign.llm.moe import MoEProjector
from salign.llm.projector import AbsProjector, LinearProjector, MLPProjector
from salign.losses.abs_align import AbsAlign
from salign.losses.registry import ALIGN_METHODS
from salign.tasks.common import SpeechTaskMixin, encoder_choices, preencoder_choices, read_token_list
from salign.tasks.init import add_init_from_asr, init_from_asr
from salign.utils.io import InputError

# the acoustic encoders of both families, and ``identity``: cached pretrained-encoder states straight to the projector
llm_encoder_choices = ClassChoices(
    "encoder", classes=dict(encoder_choices.classes, identity=IdentityEncoder), type_check=AbsEncoder,
    default="transformer")
projector_choices = ClassChoices(
    "projector", classes=dict(linear=LinearProjector, mlp=MLPProjector, moe=MoEProjector), type_check=AbsProjector,
    default="linear")
lm_choices = ClassChoices("lm", classes=dict(tiny=TinyCausalLM, hf=HFCausalLM), type_check=AbsCausalLM,
                          default="tiny")
# the loss package's registry itself (as SAlignSTTask's): ``--align ot`` on LM layers (AI-STA), any method, ``multi``
align_choices = ClassChoices("align", classes=ALIGN_METHODS, type_check=AbsAlign, default=None, optional=True)
align_choices.classes = ALIGN_METHODS


class LLMSTTask(SpeechTaskMixin, STTask):
    """ESPnet's ST task building :class:`SpeechLLMModel` (speech encoder -> projector -> decoder-only LM)."""

    class_choices_list = [
        espnet_st.frontend_choices,
        espnet_st.specaug_choices,
        espnet_st.normalize_choices,
        preencoder_choices,
        llm_encoder_choices,
        projector_choices,
        lm_choices,
        align_choices,
    ]

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """ESPnet's ST arguments with our model's ``--model_conf`` defaults; ``--token_list`` only for ``tiny``."""
        super().add_task_arguments(parser)
        required = parser.get_default("required")
        if "token_list" in required:
            required.remove("token_list")  # --lm hf tokenises with the LM's tokenizer; build_model checks tiny
        defaults = get_default_kwargs(SpeechLLMModel)
        defaults.pop("align", None)  # built from --align / --align_conf
        parser.set_defaults(model_conf=defaults)
        add_init_from_asr(parser)

    @classmethod
    def build_preprocess_fn(cls, args: argparse.Namespace, train: bool
                            ) -> Optional[Callable[[str, Dict[str, np.ndarray]], Dict[str, np.ndarray]]]:
        """The LM tokenizer's preprocessor for ``--lm hf``; ESPnet's token-list preprocessor otherwise."""
        if getattr(args, "lm", "tiny") == "hf" and args.use_preprocessor:
            from salign.llm.preprocess import HFTokenizerPreprocessor

            return HFTokenizerPreprocessor(train=train, path=(args.lm_conf or {}).get("path"))
        return super().build_preprocess_fn(args, train)

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> SpeechLLMModel:
        """Build :class:`SpeechLLMModel` from the parsed arguments (or a saved config.yaml)."""
        if args.lm == "hf":
            # the LM's tokenizer is the vocabulary: a token list given anyway (the recipe passes its own) is neither
            # read nor kept, so the trained model (config.yaml, a packed model) never needs one
            if args.token_list is not None or getattr(args, "src_token_list", None) is not None:
                logging.info("lm: hf tokenises with the LM's tokenizer: --token_list/--src_token_list not used")
            args.token_list = args.src_token_list = None
        token_list = read_token_list(args.token_list)
        src_token_list = read_token_list(getattr(args, "src_token_list", None))
        if args.lm == "tiny":
            if token_list is None:
                raise InputError("--token_list is required with --lm tiny (the LM's vocabulary)")
            if src_token_list is not None and src_token_list != token_list:
                raise InputError("--lm tiny needs one joint vocabulary: the transcript is LM input too",
                                 fix="pass the same list as --token_list and --src_token_list")
            args.token_list = list(token_list)
            args.src_token_list = list(token_list) if src_token_list is not None else None

        frontend, specaug, normalize, input_size = cls.build_front_end(args)
        preencoder, input_size = cls.build_preencoder(args, input_size)
        encoder = cls.build_encoder(llm_encoder_choices, args, input_size)

        lm_class = lm_choices.get_class(args.lm)
        lm = lm_class(token_list, **args.lm_conf) if lm_class is TinyCausalLM else lm_class(**args.lm_conf)
        pconf = {k: v for k, v in args.projector_conf.items() if k not in ("input_size", "output_size")}
        projector = projector_choices.get_class(args.projector)(
            input_size=encoder.output_size(), output_size=lm.hidden_size, **pconf)
        model_conf = dict(args.model_conf)
        ctc = None
        if float(model_conf.get("ctc_weight", 0.0)) > 0:
            # the CTC head predicts the transcript in the LM's ids (HF ids shift by one: CTC's blank is 0)
            odim = len(token_list) if args.lm == "tiny" else lm.vocab_size + 1
            ctc = CTC(odim=odim, encoder_output_size=encoder.output_size(), **args.ctc_conf)
        align = None
        if getattr(args, "align", None) is not None:
            # AI-STA: the losses compare LM hidden states (align_conf.layers: 0 = LM input, k = LM block k)
            align = align_choices.get_class(args.align)(dim=lm.hidden_size, **args.align_conf)
        model = SpeechLLMModel(frontend=frontend, specaug=specaug, normalize=normalize, encoder=encoder,
                               projector=projector, lm=lm, ctc=ctc, align=align, preencoder=preencoder, **model_conf)
        if align is not None:
            model.clock.accum_grad = int(getattr(args, "accum_grad", 1) or 1)
        if args.init is not None:
            # ESPnet's initialisation never touches a pre-trained LM
            for part in (model.preencoder, model.encoder, model.projector, model.ctc) + (
                    (model.lm,) if args.lm == "tiny" else ()):
                if part is not None:
                    initialize(part, args.init)
        init_from_asr(model, args, cls._building_from_file)
        cls.resolve_tied_freeze(model, args)
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        n_all = sum(p.numel() for p in model.parameters())
        logging.info("speech-LLM: %d of %d parameters trainable (lm %s)", n_train, n_all, args.lm)
        return model


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """Training entry point (``python -m salign.bin.llm_train``)."""
    LLMSTTask.main(cmd=cmd)
