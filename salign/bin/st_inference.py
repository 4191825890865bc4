"""Decode the unified S-Align model as ST, MT or ASR, with ESPnet's ``st_inference`` flags and output files.

    python -m salign.bin.st_inference --task st  --data_path_and_name_and_type dump/test/feats.scp,speech,kaldi_ark ...
    python -m salign.bin.st_inference --task mt  --data_path_and_name_and_type data/test/text.en,src_text,text ...
    python -m salign.bin.st_inference --task asr --data_path_and_name_and_type dump/test/feats.scp,speech,kaldi_ark ...

Every option of ``espnet2.bin.st_inference`` is accepted (``--config decode.yaml`` included). Outputs are ESPnet's:
``<output_dir>/<n>best_recog/{text,token,token_int,score}``. ``--task st`` decodes speech into the target language;
``mt`` feeds the transcript through the shared textual encoder into the same beam search; ``asr`` is CTC greedy
decoding of the acoustic encoder over the source vocabulary.

By default (``--batched true``) utterances are read ahead, sorted by length and decoded ``--batch_size`` at a time
(optionally capped by ``--batch_frames``) with :mod:`salign.decode`: the same hypotheses, scores and files as ESPnet's
``Speech2Text`` one utterance at a time, several times faster. ``--batched false`` is that one-by-one path (ESPnet's
beam search); it is also used, with a warning, for set-ups the batched search lacks (language models, n-grams).

``--plan FILE`` runs several decodes in one process (one import of ESPnet, the model loaded once per distinct
decoding setup): each non-empty line of FILE holds the options of one decode (shell-quoted), added to the options on
the command line, e.g. ``--task mt --data_path_and_name_and_type test/text.en,src_text,text --output_dir out/mt``.
The recipe's decoding stage runs every set and task of a job this way.
"""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from typing import TYPE_CHECKING, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import torch
from espnet2.fileio.datadir_writer import DatadirWriter
from espnet2.torch_utils.device_funcs import to_device
from espnet2.torch_utils.set_all_random_seed import set_all_random_seed
from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError, check_short_utt
from espnet.utils.cli_utils import get_commandline_args

from salign.decode import BatchedDecoder, ctc_greedy, length_batches
from salign.tasks.st import SAlignSTTask, register_with_espnet

if TYPE_CHECKING:
    from espnet2.bin.st_inference import Speech2Text

T = TypeVar("T")
# what ESPnet's inference writes for an utterance it cannot decode (text, tokens, token ids, score)
PLACEHOLDER = (" ", ["<space>"], [2], 0.0)

TASKS = ("st", "mt", "asr")
DEFAULT_BATCH = 32  # utterances per batch of the batched decoder
WINDOW = 8  # batches' worth of utterances read ahead and sorted by length
# Speech2Text's constructor arguments, taken from the parsed ESPnet options
S2T_KEYS = (
    "st_train_config", "st_model_file", "transducer_conf", "lm_train_config", "lm_file", "ngram_file",
    "src_lm_train_config", "src_lm_file", "src_ngram_file", "token_type", "bpemodel", "src_token_type",
    "src_bpemodel", "maxlenratio", "minlenratio", "asr_maxlenratio", "asr_minlenratio", "dtype", "beam_size",
    "ctc_weight", "lm_weight", "ngram_weight", "penalty", "nbest", "normalize_length", "asr_beam_size",
    "asr_ctc_weight", "asr_lm_weight", "asr_ngram_weight", "asr_penalty", "asr_nbest", "enh_s2t_task",
    "ctc_greedy", "hugging_face_decoder", "hugging_face_decoder_max_length",
)


def get_parser():
    """ESPnet's ``st_inference`` parser plus ``--task`` and the batched-decoding options."""
    from espnet2.bin.st_inference import get_parser as espnet_parser
    from espnet2.utils.types import str2bool

    parser = espnet_parser()
    parser.description = __doc__.split("\n")[0]
    parser.add_argument("--task", choices=TASKS, default="st",
                        help="st: speech->target, mt: transcript->target, asr: speech->transcript (CTC)")
    group = parser.add_argument_group("Batched decoding")
    group.add_argument("--batched", type=str2bool, default=True,
                       help="decode many utterances at once (salign.decode; same hypotheses as ESPnet's "
                            "Speech2Text); false: ESPnet's one-utterance-at-a-time path")
    group.add_argument("--batch_frames", type=int, default=0,
                       help="with --batched: also cap each batch at this many padded input frames "
                            "(utterances x longest; 0: no cap)")
    group.add_argument("--incremental_cache", type=str2bool, default=True,
                       help="with --batched: cached Transformer decoder step (source keys/values computed once per "
                            "utterance); false: the decoder's own forward_one_step")
    group.add_argument("--plan", default=None,
                       help="run several decodes in this process: one shell-quoted option list per line of this "
                            "file (each with its own --output_dir), added to the other options given")
    parser.set_defaults(batch_size=None)
    for action in parser._actions:
        if action.dest == "batch_size":
            action.help = (f"utterances per batch (default: {DEFAULT_BATCH} with --batched, 1 otherwise; "
                           "--batched false needs 1)")
    return parser


def _results(s2t, hyps, src: bool = False) -> List[Tuple[Optional[str], List[str], List[int], float]]:
    """(text, tokens, token ids, score) for each hypothesis, as ``Speech2Text.__call__`` post-processes them."""
    conv, tok = (s2t.src_converter, s2t.src_tokenizer) if src else (s2t.converter, s2t.tokenizer)
    out = []
    for hyp in hyps:
        yseq = hyp.yseq.tolist() if hasattr(hyp.yseq, "tolist") else list(hyp.yseq)
        ids = [i for i in yseq[1:-1] if i != 0]
        tokens = conv.ids2tokens(ids)
        out.append((tok.tokens2text(tokens) if tok is not None else None, tokens, ids, float(hyp.score)))
    return out


def _read_text(path: str, keys: Optional[set] = None) -> Iterator[Tuple[str, str]]:
    """(key, text) of a Kaldi text file, restricted to ``keys`` (``--key_file``) when given."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(maxsplit=1)
            if not parts or (keys is not None and parts[0] not in keys):
                continue
            yield parts[0], parts[1] if len(parts) > 1 else ""


def decode_mt(s2t, path: str, device: str, keys: Optional[set] = None) -> Iterator[Tuple[str, list]]:
    """Beam search from transcripts (a Kaldi ``utt text`` file) through the shared textual encoder."""
    model = s2t.st_model
    preprocess = SAlignSTTask.build_preprocess_fn(s2t.st_train_args, False)
    for key, line in _read_text(path, keys):
        ids = preprocess(key, {"src_text": line})["src_text"]
        if len(ids) == 0:
            logging.warning("empty transcript for %s", key)
            yield key, [PLACEHOLDER] * s2t.nbest
            continue
        x = torch.as_tensor(np.asarray(ids), dtype=torch.long, device=device)[None]
        with torch.no_grad():
            enc, _ = model.encode_text(x, torch.tensor([x.size(1)], device=device))
            hyps = s2t.beam_search(x=enc[0], maxlenratio=s2t.maxlenratio, minlenratio=s2t.minlenratio)
        yield key, _results(s2t, hyps[: s2t.nbest])


def _speech_loader(s2t, args):
    """ESPnet's streaming iterator over the speech data of ``args``, one utterance per batch."""
    return SAlignSTTask.build_streaming_iterator(
        args.data_path_and_name_and_type, dtype=args.dtype, batch_size=1, key_file=args.key_file,
        num_workers=args.num_workers, preprocess_fn=SAlignSTTask.build_preprocess_fn(s2t.st_train_args, False),
        collate_fn=SAlignSTTask.build_collate_fn(s2t.st_train_args, False),
        allow_variable_data_keys=args.allow_variable_data_keys, inference=True)


def decode_speech(s2t, args, device: str, task: str) -> Iterator[Tuple[str, list]]:
    """ST beam search (as ESPnet's loop) or ASR CTC decoding over the speech data of ``args``."""
    for keys, batch in _speech_loader(s2t, args):
        batch = to_device(batch, device)
        try:
            with torch.no_grad():
                if task == "asr":
                    ids, score = ctc_greedy(s2t.st_model, batch["speech"], batch["speech_lengths"])[0]
                    tokens = s2t.src_converter.ids2tokens(ids)
                    text = s2t.src_tokenizer.tokens2text(tokens) if s2t.src_tokenizer is not None else None
                    yield keys[0], [(text, tokens, ids, score)]
                else:
                    res = s2t(batch["speech"][0])
                    yield keys[0], [(t, tok, ids, float(h.score)) for t, tok, ids, h in res]
        except TooShortUttError as e:
            logging.warning("Utterance %s: %s", keys, e)
            yield keys[0], [PLACEHOLDER]



def _window(items: Iterable[T], size: int) -> Iterator[List[T]]:
    """Consecutive chunks of ``size`` items."""
    buf: List[T] = []
    for item in items:
        buf.append(item)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def _too_short(model, n_frames: int) -> bool:
    """Whether the acoustic encoder's subsampling rejects ``n_frames`` input frames (features only)."""
    embed = getattr(model.encoder, "embed", None)
    return model.frontend is None and embed is not None and check_short_utt(embed, n_frames)[0]


def batched_results(s2t, dec: BatchedDecoder, items: Sequence[Tuple[str, Optional[torch.Tensor]]], task: str,
                    batch_size: int, batch_frames: int) -> Iterator[Tuple[str, list]]:
    """Decode (key, input) items in length-sorted batches; yields (key, n-best results) in the items' order.

    ``input`` is speech (ST, ASR) or source token ids (MT); None marks an empty transcript or a too-short utterance,
    which gets ESPnet's placeholder result as in the one-by-one path.
    """
    out: Dict[int, list] = {}
    todo = [i for i, (_, x) in enumerate(items) if x is not None]
    for i, (_, x) in enumerate(items):
        if x is None:
            out[i] = [PLACEHOLDER] * (s2t.nbest if task == "mt" else 1)
    for batch in length_batches([items[i][1].size(0) for i in todo], batch_size, batch_frames):
        idx = [todo[j] for j in batch]
        try:
            res = _decode_batch(s2t, dec, [items[i][1] for i in idx], task)
        except TooShortUttError:  # e.g. a raw-wave front end: find the offending utterance(s) one by one
            res = []
            for i in idx:
                try:
                    res += _decode_batch(s2t, dec, [items[i][1]], task)
                except TooShortUttError as e:
                    logging.warning("Utterance %s: %s", items[i][0], e)
                    res.append([PLACEHOLDER])
        out.update(zip(idx, res))
    for i, (key, _) in enumerate(items):
        yield key, out[i]


def _decode_batch(s2t, dec: BatchedDecoder, xs: List[torch.Tensor], task: str) -> List[list]:
    if task == "asr":
        res = []
        for ids, score in dec.asr(xs):
            tokens = s2t.src_converter.ids2tokens(ids)
            text = s2t.src_tokenizer.tokens2text(tokens) if s2t.src_tokenizer is not None else None
            res.append([(text, tokens, ids, score)])
        return res
    hyps = dec.mt(xs) if task == "mt" else dec.st(xs)
    return [_results(s2t, h) for h in hyps]


def mt_items(s2t, path: str, keys: Optional[set] = None) -> Iterator[Tuple[str, Optional[torch.Tensor]]]:
    """(key, source token ids) of a Kaldi ``utt text`` file; None for an empty transcript."""
    preprocess = SAlignSTTask.build_preprocess_fn(s2t.st_train_args, False)
    for key, line in _read_text(path, keys):
        ids = preprocess(key, {"src_text": line})["src_text"]
        if len(ids) == 0:
            logging.warning("empty transcript for %s", key)
            yield key, None
        else:
            yield key, torch.as_tensor(np.asarray(ids), dtype=torch.long)


def speech_items(s2t, args) -> Iterator[Tuple[str, Optional[torch.Tensor]]]:
    """(key, speech (T, ...)) of the speech data of ``args``; None for an utterance too short to encode."""
    for keys, batch in _speech_loader(s2t, args):
        speech = batch["speech"][0]
        if _too_short(s2t.st_model, speech.size(0)):
            logging.warning("Utterance %s: too short (%d frames) for the encoder's subsampling", keys[0],
                            speech.size(0))
            yield keys[0], None
        else:
            yield keys[0], speech


def _speech2text(args, device: str, cache: Optional[Dict[str, object]] = None):
    """ESPnet's ``Speech2Text`` on our model for ``args`` (reused from ``cache`` when built with the same options)."""
    from espnet2.bin.st_inference import Speech2Text

    kwargs = {k: getattr(args, k) for k in S2T_KEYS}
    key = repr(sorted(kwargs.items())) + device
    if cache is not None and key in cache:
        return cache[key]
    s2t = Speech2Text(device=device, **kwargs)
    if cache is not None:
        cache[key] = s2t
    return s2t


def check_target_ctc(args: argparse.Namespace, model: torch.nn.Module) -> None:
    """Refuse, with one line and exit status 2, target-CTC options (``--ctc_weight > 0``, ``--ctc_greedy true``)
    for an ST/MT decode of a model built without a target-side CTC (``model.st_ctc`` is None)."""
    if args.task == "asr" or getattr(model, "st_ctc", None) is not None:
        return
    for given, on, fix in ((f"--ctc_weight {args.ctc_weight:g}", args.ctc_weight > 0, "--ctc_weight 0"),
                           ("--ctc_greedy true", args.ctc_greedy, "--ctc_greedy false")):
        if on:
            print(f"ERROR [st_inference]: {given} needs a model trained with a target-side CTC "
                  f"(model_conf.st_ctc_weight > 0) (fix: {fix})", file=sys.stderr)
            sys.exit(2)


def _batch_size(args: argparse.Namespace) -> int:
    return args.batch_size if args.batch_size is not None else (DEFAULT_BATCH if args.batched else 1)


def prepare(args: argparse.Namespace, cache: Optional[Dict[str, object]] = None) -> "Speech2Text":
    """Check the options of one decode and build (or take from ``cache``) its ``Speech2Text``; nothing is decoded.

    Exits (status 2, one line) on options the model cannot honour, so a ``--plan`` is checked whole first."""
    batch_size = _batch_size(args)
    if batch_size < 1:
        raise SystemExit("--batch_size must be >= 1")
    if not args.batched and batch_size > 1:
        raise SystemExit("--batched false decodes one utterance at a time; use --batch_size 1")
    if args.ngpu > 1:
        raise SystemExit("only single-GPU decoding is supported (--ngpu 0 or 1)")
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    set_all_random_seed(args.seed)
    register_with_espnet()
    s2t = _speech2text(args, "cuda" if args.ngpu >= 1 else "cpu", cache)
    check_target_ctc(args, s2t.st_model)
    return s2t


def inference(args, cache: Optional[Dict[str, object]] = None) -> None:
    """Build ``Speech2Text`` on our model and write ESPnet's output files for the chosen task.

    ``cache`` (a dict kept by the caller) reuses the built ``Speech2Text`` across calls with the same options."""
    s2t = prepare(args, cache)
    batch_size = _batch_size(args)
    device = "cuda" if args.ngpu >= 1 else "cpu"
    src = None
    if args.task == "mt":
        srcs = [p for p, name, _ in args.data_path_and_name_and_type if name == "src_text"]
        if len(srcs) != 1:
            raise SystemExit("--task mt needs --data_path_and_name_and_type <text file>,src_text,text")
        src = srcs[0]
    keys = None
    if args.key_file:  # ESPnet's loader honours it for speech; MT reads its text file itself
        with open(args.key_file, encoding="utf-8") as f:
            keys = {line.split(maxsplit=1)[0] for line in f if line.strip()}
    dec = None
    if args.batched:
        try:
            dec = BatchedDecoder.from_speech2text(s2t, fast=args.incremental_cache)
        except ValueError as e:
            logging.warning("%s: decoding one utterance at a time", e)
    if dec is not None:
        items = mt_items(s2t, src, keys) if args.task == "mt" else speech_items(s2t, args)
        results = (r for chunk in _window(items, batch_size * WINDOW)
                   for r in batched_results(s2t, dec, chunk, args.task, batch_size, args.batch_frames))
    elif args.task == "mt":
        results = decode_mt(s2t, src, device, keys)
    else:
        results = decode_speech(s2t, args, device, args.task)
    with DatadirWriter(args.output_dir) as writer:
        for key, nbest in results:
            for n, (text, tokens, ids, score) in enumerate(nbest, 1):
                w = writer[f"{n}best_recog"]
                w["token"][key] = " ".join(tokens)
                w["token_int"][key] = " ".join(map(str, ids))
                w["score"][key] = str(score)
                if text is not None:
                    w["text"][key] = text


def read_plan(path: str) -> List[List[str]]:
    """The decodes of a ``--plan`` file: one shell-quoted option list per non-empty, non-comment line."""
    from salign.utils.io import InputError

    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InputError(f"cannot read the plan ({e.strerror})", path, fix="check the decoding stage's split dir")
    plan = []
    for n, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                plan.append(shlex.split(line))
            except ValueError as e:
                raise InputError(f"cannot parse the options ({e})", path, n, fix="quote them as a shell would")
            if "--plan" in plan[-1] or "--output_dir" not in plan[-1]:
                raise InputError("each decode needs its own --output_dir (and no --plan)", path, n,
                                 fix="give --output_dir DIR on every line")
    return plan


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point."""
    print(get_commandline_args(), file=sys.stderr)
    cmd = list(sys.argv[1:] if cmd is None else cmd)
    cmd = [x for a in cmd for x in (a.split("=", 1) if a.startswith("--plan=") else [a])]
    if "--plan" not in cmd:
        inference(get_parser().parse_args(cmd))
        return
    i = cmd.index("--plan")
    if i + 1 >= len(cmd):
        raise SystemExit("--plan needs a file")
    plan_file, common = cmd[i + 1], cmd[:i] + cmd[i + 2:]
    if "--output_dir" not in common:  # ESPnet's parser requires it; every plan line sets its own
        common += ["--output_dir", "unused"]
    from salign.utils.io import InputError

    try:
        plan = read_plan(plan_file)
    except InputError as e:
        raise SystemExit(f"ERROR [st_inference]: {e}")
    cache: Dict[str, object] = {}
    parsed = [get_parser().parse_args(common + opts) for opts in plan]
    for args in parsed:  # every decode's options and model checked before the first decode starts
        prepare(args, cache)
    for n, (opts, args) in enumerate(zip(plan, parsed), 1):
        print(f"[st_inference] {plan_file}, decode {n}/{len(plan)}: {shlex.join(opts)}", file=sys.stderr)
        inference(args, cache)


if __name__ == "__main__":
    main()
