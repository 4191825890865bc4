"""What the ESPnet tasks of both model families share (S-Align: :mod:`salign.tasks.st`; speech-LLM:
:mod:`salign.llm.task`): reading token lists, building the speech front end and the acoustic encoder, building
a trained model from its files without re-reading pre-trained weights, and the trainer
(:class:`salign.tasks.trainer.SafeTrainer`: verified resume and averaging, atomic space-checked saves)."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

import yaml
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.asr.preencoder.abs_preencoder import AbsPreEncoder
from espnet2.asr.specaug.abs_specaug import AbsSpecAug
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.tasks import st as espnet_st
from espnet2.train.class_choices import ClassChoices

from salign.st.hubert import HuBERTEncoder
from salign.st.stack import FrameStack
from salign.st.whisper import WhisperEncoder
from salign.tasks.trainer import SafeTrainer
from salign.utils.io import InputError
from salign.utils.package import resolve_config

#: frame stacking (``stack``: k fbank frames -> one, before the encoder) or ESPnet's pre-encoders, both families
preencoder_choices = ClassChoices(
    "preencoder", classes=dict(espnet_st.preencoder_choices.classes, stack=FrameStack), type_check=AbsPreEncoder,
    default=None, optional=True)

#: acoustic encoders of both families: ESPnet's ST encoders (transformer default), the SSL encoder ``hubert`` and
#: Whisper's encoder ``whisper`` (both on the raw wave, from local checkpoints)
encoder_choices = ClassChoices(
    "encoder", classes=dict(espnet_st.encoder_choices.classes, hubert=HuBERTEncoder, whisper=WhisperEncoder),
    type_check=AbsEncoder, default="transformer")


def read_token_list(value) -> Optional[List[str]]:
    """A token list given as a file (one token a line) or a list; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            with open(value, encoding="utf-8") as f:
                return [line.rstrip() for line in f]
        except FileNotFoundError:
            raise InputError("no such token list", value, fix="run stage 5 (token lists) or check --token_list") \
                from None
    return list(value)


class SpeechTaskMixin:
    """Shared class methods of salign's ESPnet tasks (put before ESPnet's task class in the bases)."""

    #: ESPnet's trainer with verified resume and averaging and atomic, space-checked checkpoint saves
    trainer = SafeTrainer

    #: True while a trained model is rebuilt from config.yaml + model file (pre-trained weights are not re-read)
    _building_from_file = False

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        """Training needs the target text; speech is optional so that text-only (MT pre-training) batches train."""
        return ("speech",) if inference else ("text",)

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        """``speech`` and ``src_text`` (transcript) are optional in training, and the language labels of a routing
        projector's language loss (``moe``): ``lang`` (one id per utterance), ``lang_frames`` (one per frame)."""
        return () if inference else ("speech", "src_text", "lang", "lang_frames")

    @classmethod
    def build_model_from_file(cls, config_file=None, model_file=None, device: str = "cpu"):
        """As ESPnet's, but options that load pre-trained weights (``--init_from_mt``, an SSL encoder checkpoint)
        are not re-read: the model file has the trained weights; and a config inside an unpacked model archive names
        the archive's own files (:func:`salign.utils.package.resolve_config`)."""
        cls._building_from_file = True
        try:
            if config_file is not None:
                conf, changed = resolve_config(config_file)
                if changed:  # a packaged model: its config names the package's own files
                    with tempfile.TemporaryDirectory(prefix="salign_config_") as tmp:
                        resolved = Path(tmp) / "config.yaml"
                        resolved.write_text(yaml.safe_dump(conf, allow_unicode=True), encoding="utf-8")
                        return super().build_model_from_file(resolved, model_file, device)  # type: ignore[misc]
            return super().build_model_from_file(config_file, model_file, device)  # type: ignore[misc]
        finally:
            cls._building_from_file = False

    @staticmethod
    def resolve_tied_freeze(model, args: argparse.Namespace) -> None:
        """Make ``--freeze_param NAME`` reach a tied parameter under any of its names.

        ESPnet freezes the names ``model.named_parameters()`` yields, which lists a tied parameter once, under its
        first name (the source embedding of a tied model is ``ctc.ctc_lo.weight`` there, not ``src_embed.weight``):
        a prefix that names a tied parameter only through another alias is extended with the listed name."""
        prefixes = list(getattr(args, "freeze_param", None) or [])
        if not prefixes:
            return
        listed = {id(p): name for name, p in model.named_parameters()}
        extra = []
        for name, p in model.named_parameters(remove_duplicate=False):
            if any(name == t or name.startswith(t + ".") for t in prefixes) and listed[id(p)] != name:
                if listed[id(p)] not in prefixes and listed[id(p)] not in extra:
                    extra.append(listed[id(p)])
        args.freeze_param = prefixes + extra

    @classmethod
    def build_front_end(cls, args: argparse.Namespace) -> Tuple[Optional[AbsFrontend], Optional[AbsSpecAug],
                                                               Optional[AbsNormalize], int]:
        """(frontend, SpecAugment, normalisation, encoder input size): no frontend when ``--input_size`` is given
        (precomputed features, or ``1`` for an encoder that reads the wave)."""
        if args.input_size is None:
            frontend = espnet_st.frontend_choices.get_class(args.frontend)(**args.frontend_conf)
            input_size = frontend.output_size()
        else:
            args.frontend, args.frontend_conf, frontend = None, {}, None
            input_size = args.input_size
        specaug = (espnet_st.specaug_choices.get_class(args.specaug)(**args.specaug_conf)
                   if args.specaug is not None else None)
        normalize = (espnet_st.normalize_choices.get_class(args.normalize)(**args.normalize_conf)
                     if args.normalize is not None else None)
        return frontend, specaug, normalize, input_size

    @classmethod
    def build_preencoder(cls, args: argparse.Namespace, input_size: int) -> Tuple[Optional[AbsPreEncoder], int]:
        """The pre-encoder of ``args.preencoder`` (None without one) and the encoder's input size after it."""
        if getattr(args, "preencoder", None) is None:
            return None, input_size
        pconf = dict(args.preencoder_conf)
        if args.preencoder == "stack":
            pconf.setdefault("input_size", input_size)
        preencoder = preencoder_choices.get_class(args.preencoder)(**pconf)
        return preencoder, preencoder.output_size()

    @classmethod
    def build_encoder(cls, choices: ClassChoices, args: argparse.Namespace, input_size: int) -> AbsEncoder:
        """The acoustic encoder of ``args.encoder``. For an encoder built from a checkpoint (``hubert``, ``whisper``),
        ``args.encoder_conf`` is rewritten so that config.yaml (written after this) rebuilds the architecture without
        the checkpoint file: the trained weights come from the model file, so a packed or copied model decodes
        anywhere."""
        encoder = choices.get_class(args.encoder)(input_size=input_size, **args.encoder_conf)
        if isinstance(encoder, (HuBERTEncoder, WhisperEncoder)) and not cls._building_from_file:
            conf = {k: v for k, v in args.encoder_conf.items() if k != "checkpoint"}
            args.encoder_conf = {**conf, **encoder.standalone_conf()}
        return encoder
