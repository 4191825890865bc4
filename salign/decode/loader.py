"""The one way salign's decoding and analysis tools load a trained model and its test data.

* :func:`load_model`: ``SAlignSTTask.build_model_from_file`` in eval mode and the wanted dtype (what ESPnet's
  ``Speech2Text`` does), with one-line errors for missing or mismatched files (the model file's own checks:
  :func:`salign.utils.checkpoint.check_model_file`, importable from here too); a speech-LLM config (it has
  ``lm:``, :func:`is_llm_config`) is built by :class:`salign.llm.task.LLMSTTask` instead (:func:`task_of`).
* :func:`speech_items`: (key, speech) through ESPnet's streaming iterator and the model's preprocessor, exactly as
  ``st_inference`` reads it (``kaldi_ark`` features or ``sound`` audio); None for an utterance too short for the
  encoder's subsampling.
* :func:`text_items`: (key, source token ids) of a Kaldi text file, tokenised by the model's own preprocessor; None
  for a transcript with no token.
* :class:`Vocab`: token ids back to tokens and text, as ``Speech2Text`` post-processes its hypotheses.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from salign.data.kaldi import iter_table, nfc
from salign.utils.checkpoint import LOAD_ERRORS, MODEL_FIX, check_model_file
from salign.utils.io import InputError
from salign.utils.package import check_named_files

DataSpec = Sequence[Tuple[str, str, str]]  # ESPnet's --data_path_and_name_and_type triples


def is_llm_config(config: str) -> bool:
    """Whether a training config.yaml is a speech-LLM model's (``salign.bin.llm_train`` writes ``lm:``)."""
    import yaml

    with open(config, encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    return isinstance(conf, dict) and conf.get("lm") is not None and "projector" in conf


def task_of(train_args):
    """The ESPnet task class that built a model with these training options (S-Align or speech-LLM)."""
    if getattr(train_args, "lm", None) is not None and hasattr(train_args, "projector"):
        from salign.llm.task import LLMSTTask

        return LLMSTTask
    from salign.tasks.st import SAlignSTTask

    return SAlignSTTask


def load_model(config: str, model_file: str, device: str = "cpu", dtype: str = "float32"):
    """The trained model (eval mode, ``dtype``, on ``device``) and its training options, as ``Speech2Text`` builds
    them; returns (model, train_args). A missing, empty or truncated model file is one line (:func:`check_model_file`)
    before anything is built."""
    from salign.tasks.st import SAlignSTTask, register_with_espnet

    register_with_espnet()
    if not config or not Path(config).is_file():
        raise InputError("no such file", config or "(none)",
                         fix="pass the trained model's config.yaml to --st_train_config")
    check_model_file(model_file)
    check_named_files(config)  # a missing CMVN file or token list is named as such, not as a damaged model
    task, trainer = SAlignSTTask, "st_train"
    if is_llm_config(config):
        from salign.llm.task import LLMSTTask

        task, trainer = LLMSTTask, "llm_train"
    try:
        model, train_args = task.build_model_from_file(config, model_file, device)
    except FileNotFoundError as exc:  # a file the config names (where check_named_files could not see it)
        if exc.filename and os.path.realpath(exc.filename) != os.path.realpath(model_file):
            raise InputError(f"the config names {exc.filename}, which does not exist here", config,
                             fix="decode in the recipe directory the model was trained in, or use its packed "
                                 "model.zip (stage 14)") from None
        raise InputError("truncated or corrupt model file (a part of it is missing)", model_file,
                         fix=MODEL_FIX) from None
    except LOAD_ERRORS as exc:  # damage inside an archive whose index is intact
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"truncated or corrupt model file ({first})", model_file, fix=MODEL_FIX) from None
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "PytorchStreamReader" in first or "zip archive" in first:
            raise InputError(f"truncated or corrupt model file ({first[:160]})", model_file, fix=MODEL_FIX) from None
        raise InputError(f"cannot build the model from this config/model pair: {first}", model_file,
                         fix=f"use the config.yaml written next to the .pth by {trainer}") from None
    return model.to(dtype=getattr(torch, dtype)).eval(), train_args


def too_short(model: torch.nn.Module, n_frames: int) -> bool:
    """Whether the acoustic encoder's subsampling rejects ``n_frames`` input frames (features only)."""
    from espnet.nets.pytorch_backend.transformer.subsampling import check_short_utt

    embed = getattr(model.encoder, "embed", None)
    return model.frontend is None and embed is not None and check_short_utt(embed, n_frames)[0]


def speech_items(model: torch.nn.Module, train_args, data: DataSpec, key_file: Optional[str] = None,
                 dtype: str = "float32", num_workers: int = 0, allow_variable_data_keys: bool = False
                 ) -> Iterator[Tuple[str, Optional[torch.Tensor]]]:
    """(key, speech (T, ...)) of the speech data ``data`` (ESPnet's loader, one utterance at a time, file order or
    ``key_file`` order); None for an utterance too short to encode."""
    import logging

    task = task_of(train_args)
    loader = task.build_streaming_iterator(
        data, dtype=dtype, batch_size=1, key_file=key_file, num_workers=num_workers,
        preprocess_fn=task.build_preprocess_fn(train_args, False),
        collate_fn=task.build_collate_fn(train_args, False),
        allow_variable_data_keys=allow_variable_data_keys, inference=True)
    for keys, batch in loader:
        speech = batch["speech"][0]
        if too_short(model, speech.size(0)):
            logging.warning("Utterance %s: too short (%d frames) for the encoder's subsampling", keys[0],
                            speech.size(0))
            yield keys[0], None
        else:
            yield keys[0], speech


def text_items(train_args, path: str, keys: Optional[Collection[str]] = None
               ) -> Iterator[Tuple[str, Optional[torch.Tensor]]]:
    """(key, source token ids) of a Kaldi ``utt text`` file (only ``keys`` when given); None for an empty
    transcript (NFC, as every text reader). Tokenised by the model's preprocessor, as in training."""
    import logging

    preprocess = task_of(train_args).build_preprocess_fn(train_args, False)
    if preprocess is None:
        raise InputError("the model's config has use_preprocessor: false, so transcripts cannot be tokenised",
                         fix="use a model trained with ESPnet's default preprocessor")
    for _, key, line in iter_table(path, keys, fix="pass the set's transcript file"):
        ids = preprocess(key, {"src_text": nfc(line)})["src_text"]
        if len(ids) == 0:
            logging.warning("empty transcript for %s", key)
            yield key, None
        else:
            yield key, torch.as_tensor(np.asarray(ids, dtype=np.int64), dtype=torch.long)


@dataclass
class Vocab:
    """Token-id converters and detokenisers of the target and source side, built as ``Speech2Text`` builds them."""

    converter: object
    tokenizer: Optional[object]
    src_converter: object
    src_tokenizer: Optional[object]

    @classmethod
    def build(cls, model: torch.nn.Module, train_args, token_type: Optional[str] = None,
              bpemodel: Optional[str] = None, src_token_type: Optional[str] = None,
              src_bpemodel: Optional[str] = None) -> "Vocab":
        """Token types and BPE models default to the model's training options (ESPnet's rule)."""
        from espnet2.text.token_id_converter import TokenIDConverter

        tok = _tokenizer(token_type or train_args.token_type, bpemodel or train_args.bpemodel)
        src_tok = _tokenizer(src_token_type or train_args.src_token_type, src_bpemodel or train_args.src_bpemodel)
        return cls(TokenIDConverter(token_list=model.token_list), tok,
                   TokenIDConverter(token_list=model.src_token_list), src_tok)

    def target(self, yseq: Sequence[int], score: float) -> Tuple[Optional[str], List[str], List[int], float]:
        """(text, tokens, ids, score) of a hypothesis ``<sos> ... <eos>`` (blank ids 0 dropped, as ESPnet)."""
        ids = [int(i) for i in list(yseq)[1:-1] if i != 0]
        tokens = self.converter.ids2tokens(ids)
        return (self.tokenizer.tokens2text(tokens) if self.tokenizer is not None else None, tokens, ids,
                float(score))

    def source(self, ids: List[int], score: float) -> Tuple[Optional[str], List[str], List[int], float]:
        """(text, tokens, ids, score) of source-side token ids (ASR)."""
        tokens = self.src_converter.ids2tokens(ids)
        return (self.src_tokenizer.tokens2text(tokens) if self.src_tokenizer is not None else None, tokens, ids,
                float(score))


def _tokenizer(token_type: Optional[str], bpemodel: Optional[str]):
    """ESPnet's detokeniser choice in ``Speech2Text``: none without a token type, a BPE one only with its model."""
    from espnet2.text.build_tokenizer import build_tokenizer

    if token_type is None:
        return None
    if token_type in ("bpe", "hugging_face") or "whisper" in token_type:
        return build_tokenizer(token_type=token_type, bpemodel=bpemodel) if bpemodel is not None else None
    return build_tokenizer(token_type=token_type)
