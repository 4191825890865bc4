"""One decode (ST, MT or ASR) of a data set into ESPnet's output files, batched or one utterance at a time.

:func:`decode` takes the parsed ``st_inference`` options of one decode and writes
``<output_dir>/<n>best_recog/{text,token,token_int,score}``:

* batched (``--batched true``, the default): the model from :func:`salign.decode.loader.load_model`, the data from
  :func:`~salign.decode.loader.speech_items` / :func:`~salign.decode.loader.text_items`, read ahead
  ``batch_size * WINDOW`` at a time and decoded in length-sorted batches by :class:`~salign.decode.BatchedDecoder`
  built from :class:`~salign.decode.settings.DecodeSettings`;
* one by one (``--batched false``, or set-ups the batched search lacks): ESPnet's ``Speech2Text`` (its beam search).

Both write ESPnet's placeholder for an utterance they cannot decode (too short, empty transcript). A
:class:`Session` keeps loaded models and built ``Speech2Text`` objects for several decodes in one process.

A speech-LLM model (``salign.bin.llm_train``'s config.yaml) decodes ST, MT and ASR with
:class:`salign.llm.decode.LLMDecoder` (the same batched beam search driving the LM's key/value cache), in batches
or (``--batched false``) one utterance at a time; its text comes from :class:`salign.llm.decode.LMVocab`.
"""
from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

import torch

from salign.decode.decoder import BatchedDecoder, ctc_greedy, length_batches
from salign.decode.jobs import read_keys
from salign.decode.loader import Vocab, load_model, speech_items, text_items
from salign.decode.settings import DecodeSettings
from salign.utils.io import InputError
from salign.utils.progress import Progress

if TYPE_CHECKING:
    from salign.llm.decode import LLMDecoder, LMVocab

T = TypeVar("T")
Result = Tuple[Optional[str], List[str], List[int], float]  # text, tokens, token ids, score
# what ESPnet's inference writes for an utterance it cannot decode
PLACEHOLDER: Result = (" ", ["<space>"], [2], 0.0)
TASKS = ("st", "mt", "asr")
DEFAULT_BATCH = 32  # utterances per batch of the batched decoder
WINDOW = 8  # batches' worth of utterances read ahead and sorted by length
# Speech2Text's constructor arguments, taken from the parsed ESPnet options (one-by-one path)
S2T_KEYS = (
    "st_train_config", "st_model_file", "transducer_conf", "lm_train_config", "lm_file", "ngram_file",
    "src_lm_train_config", "src_lm_file", "src_ngram_file", "token_type", "bpemodel", "src_token_type",
    "src_bpemodel", "maxlenratio", "minlenratio", "asr_maxlenratio", "asr_minlenratio", "dtype", "beam_size",
    "ctc_weight", "lm_weight", "ngram_weight", "penalty", "nbest", "normalize_length", "asr_beam_size",
    "asr_ctc_weight", "asr_lm_weight", "asr_ngram_weight", "asr_penalty", "asr_nbest", "enh_s2t_task",
    "ctc_greedy", "hugging_face_decoder", "hugging_face_decoder_max_length",
)


def batch_size_of(args: argparse.Namespace) -> int:
    """``--batch_size``, defaulting to :data:`DEFAULT_BATCH` batched and 1 one by one."""
    return args.batch_size if args.batch_size is not None else (DEFAULT_BATCH if args.batched else 1)


def check_options(args: argparse.Namespace) -> None:
    """Options that no model can honour: one-line :class:`InputError`."""
    batch_size = batch_size_of(args)
    if batch_size < 1:
        raise InputError(f"--batch_size {batch_size} must be >= 1")
    if not args.batched and batch_size > 1:
        raise InputError("--batched false decodes one utterance at a time", fix="use --batch_size 1")
    if args.ngpu > 1:
        raise InputError("only single-GPU decoding is supported", fix="--ngpu 0 or 1")
    if args.task == "mt" and len(mt_source(args)) != 1:
        raise InputError("--task mt needs one source text",
                         fix="--data_path_and_name_and_type <text file>,src_text,text")


def mt_source(args: argparse.Namespace) -> List[str]:
    """The ``src_text`` file(s) of ``--data_path_and_name_and_type``."""
    return [p for p, name, _ in args.data_path_and_name_and_type if name == "src_text"]


def check_target_ctc(args: argparse.Namespace, model: torch.nn.Module) -> None:
    """Refuse target-CTC options (``--ctc_weight > 0``, ``--ctc_greedy true``) for an ST/MT decode of a model built
    without a target-side CTC (``model.st_ctc`` is None): one-line :class:`InputError`."""
    if args.task == "asr" or getattr(model, "st_ctc", None) is not None:
        return
    for given, on, fix in ((f"--ctc_weight {args.ctc_weight:g}", args.ctc_weight > 0, "--ctc_weight 0"),
                           ("--ctc_greedy true", args.ctc_greedy, "--ctc_greedy false")):
        if on:
            raise InputError(f"{given} needs a model trained with a target-side CTC "
                             "(model_conf.st_ctc_weight > 0)", fix=fix)


class Session:
    """Models, vocabularies and ``Speech2Text`` objects shared by the decodes of one process."""

    def __init__(self) -> None:
        self._models: Dict[Tuple[str, str, str, str], tuple] = {}
        self._s2t: Dict[str, object] = {}

    def model(self, args: argparse.Namespace, settings: DecodeSettings):
        """(model, train_args, vocab) of the options (loaded once per config, model file, device and dtype)."""
        key = (args.st_train_config, args.st_model_file, settings.device, settings.dtype)
        if key not in self._models:
            model, train_args = load_model(args.st_train_config, args.st_model_file, settings.device,
                                           settings.dtype)
            self._models[key] = (model, train_args)
        model, train_args = self._models[key]
        if is_llm(model):
            from salign.llm.decode import LMVocab

            return model, train_args, LMVocab(model, train_args, settings.token_type, settings.bpemodel)
        vocab = Vocab.build(model, train_args, settings.token_type, settings.bpemodel, settings.src_token_type,
                            settings.src_bpemodel)
        return model, train_args, vocab

    def speech2text(self, args: argparse.Namespace, settings: DecodeSettings):
        """ESPnet's ``Speech2Text`` for the options (built once per distinct set of them)."""
        from espnet2.bin.st_inference import Speech2Text

        kwargs = {k: getattr(args, k) for k in S2T_KEYS}
        key = repr(sorted(kwargs.items())) + settings.device
        if key not in self._s2t:
            self._s2t[key] = Speech2Text(device=settings.device, **kwargs)
        return self._s2t[key]


def prepare(args: argparse.Namespace, session: Session) -> DecodeSettings:
    """Check one decode's options against its model (loading it into ``session``); nothing is decoded."""
    from espnet2.torch_utils.set_all_random_seed import set_all_random_seed

    check_options(args)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    set_all_random_seed(args.seed)
    settings = DecodeSettings.from_args(args)
    model, _, _ = session.model(args, settings)
    if is_llm(model):
        llm_decoder(model, settings)
    else:
        check_target_ctc(args, model)
    return settings


def is_llm(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a speech-LLM (:class:`salign.llm.model.SpeechLLMModel`)."""
    return hasattr(model, "prompt_inputs") and hasattr(model, "lm")


def llm_decoder(model: torch.nn.Module, settings: DecodeSettings):
    """The speech-LLM's batched decoder for ``settings``; options it cannot honour: one-line :class:`InputError`."""
    from salign.llm.decode import LLMDecoder

    try:
        return LLMDecoder.from_settings(model, settings)
    except ValueError as e:
        raise InputError(str(e)) from None


def decode(args: argparse.Namespace, session: Optional[Session] = None) -> int:
    """Decode the data of ``args`` as ``args.task`` and write ESPnet's output files; returns the utterance count."""
    from espnet2.fileio.datadir_writer import DatadirWriter

    session = session or Session()
    settings = prepare(args, session)
    model, train_args, vocab = session.model(args, settings)
    keys = set(read_keys(args.key_file)) if args.key_file else None  # ESPnet's loader honours it for speech
    dec = None
    if is_llm(model):  # batched or (--batched false: --batch_size 1) one at a time, the same search
        dec = llm_decoder(model, settings)
    elif args.batched:
        try:
            dec = BatchedDecoder.from_settings(model, settings, fast=args.incremental_cache)
        except ValueError as e:
            logging.warning("%s: decoding one utterance at a time", e)
    if dec is not None:
        if args.task == "mt":
            items = text_items(train_args, mt_source(args)[0], keys)
        else:
            items = speech_items(model, train_args, args.data_path_and_name_and_type, args.key_file, args.dtype,
                                 args.num_workers, args.allow_variable_data_keys)
        size = batch_size_of(args)
        results = (r for chunk in windows(items, size * WINDOW)
                   for r in batched_results(dec, vocab, chunk, args.task, size, args.batch_frames))
    else:
        results = one_by_one(args, session, settings, model, train_args, vocab, keys)
    n = 0
    progress = Progress(len(keys) if keys is not None else count_inputs(args),
                        f"[st_inference] {args.task} -> {args.output_dir}")
    with DatadirWriter(args.output_dir) as writer:
        for key, nbest in results:
            n += 1
            progress.update()
            for i, (text, tokens, ids, score) in enumerate(nbest, 1):
                w = writer[f"{i}best_recog"]
                w["token"][key] = " ".join(tokens)
                w["token_int"][key] = " ".join(map(str, ids))
                w["score"][key] = str(score)
                if text is not None:
                    w["text"][key] = text
    progress.finish()
    return n


def count_inputs(args: argparse.Namespace) -> Optional[int]:
    """Utterances a decode without a key file will see: the lines of its first data file (None if unreadable)."""
    try:
        with open(args.data_path_and_name_and_type[0][0], "rb") as f:
            return sum(1 for line in f if line.strip())
    except (OSError, IndexError, TypeError):
        return None


def windows(items: Iterable[T], size: int) -> Iterator[List[T]]:
    """Consecutive chunks of ``size`` items (the last may be shorter)."""
    buf: List[T] = []
    for item in items:
        buf.append(item)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def batched_results(dec: "BatchedDecoder | LLMDecoder", vocab: "Vocab | LMVocab",
                    items: Sequence[Tuple[str, Optional[torch.Tensor]]], task: str, batch_size: int,
                    batch_frames: int) -> Iterator[Tuple[str, List[Result]]]:
    """Decode (key, input) items in length-sorted batches; yields (key, n-best results) in the items' order.

    ``input`` is speech (ST, ASR) or source token ids (MT); None marks an empty transcript or a too-short utterance,
    which gets ESPnet's placeholder result as in the one-by-one path.
    """
    from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError

    out: Dict[int, List[Result]] = {}
    todo = [i for i, (_, x) in enumerate(items) if x is not None]
    for i, (_, x) in enumerate(items):
        if x is None:
            out[i] = [PLACEHOLDER] * (dec.nbest if task == "mt" else 1)
    for batch in length_batches([items[i][1].size(0) for i in todo], batch_size, batch_frames):
        idx = [todo[j] for j in batch]
        try:
            res = decode_batch(dec, vocab, [items[i][1] for i in idx], task)
        except TooShortUttError:  # e.g. a raw-wave front end: find the offending utterance(s) one by one
            res = []
            for i in idx:
                try:
                    res += decode_batch(dec, vocab, [items[i][1]], task)
                except TooShortUttError as e:
                    logging.warning("Utterance %s: %s", items[i][0], e)
                    res.append([PLACEHOLDER])
        out.update(zip(idx, res))
    for i, (key, _) in enumerate(items):
        yield key, out[i]


def decode_batch(dec: "BatchedDecoder | LLMDecoder", vocab: "Vocab | LMVocab", xs: List[torch.Tensor],
                 task: str) -> List[List[Result]]:
    """n-best results of one batch of inputs."""
    if task == "asr" and not getattr(dec, "asr_by_search", False):
        return [[vocab.source(ids, score)] for ids, score in dec.asr(xs)]
    hyps = dec.mt(xs) if task == "mt" else dec.asr(xs) if task == "asr" else dec.st(xs)
    return [[vocab.target(h.yseq, h.score) for h in nbest] for nbest in hyps]


@torch.no_grad()
def one_by_one(args: argparse.Namespace, session: Session, settings: DecodeSettings, model, train_args,
               vocab: Vocab, keys: Optional[set]) -> Iterator[Tuple[str, List[Result]]]:
    """ESPnet's path: ``Speech2Text`` for ST, its beam search for MT, CTC greedy for ASR, one utterance at a time."""
    from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError

    dev = settings.device
    if args.task == "mt":
        s2t = session.speech2text(args, settings)
        for key, ids in text_items(train_args, mt_source(args)[0], keys):
            if ids is None:
                yield key, [PLACEHOLDER] * settings.nbest
                continue
            x = ids.to(dev)[None]
            enc, _ = s2t.st_model.encode_text(x, torch.tensor([x.size(1)], device=dev))
            hyps = s2t.beam_search(x=enc[0], maxlenratio=settings.maxlenratio, minlenratio=settings.minlenratio)
            yield key, [vocab.target(h.yseq.tolist(), h.score) for h in hyps[: settings.nbest]]
        return
    s2t = session.speech2text(args, settings) if args.task == "st" else None
    for key, speech in speech_items(model, train_args, args.data_path_and_name_and_type, args.key_file, args.dtype,
                                    args.num_workers, args.allow_variable_data_keys):
        if speech is None:
            yield key, [PLACEHOLDER]
            continue
        speech = speech.to(dev)
        try:
            if args.task == "asr":
                ids, score = ctc_greedy(model, speech[None], torch.tensor([speech.size(0)], device=dev))[0]
                yield key, [vocab.source(ids, score)]
            else:  # a copy: ESPnet's feature normalisation works in place on what it is given
                yield key, [(t, tok, ids, float(h.score)) for t, tok, ids, h in s2t(speech.clone())]
        except TooShortUttError as e:
            logging.warning("Utterance %s: %s", key, e)
            yield key, [PLACEHOLDER]
