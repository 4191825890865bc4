"""Decode the unified S-Align model as ST, MT or ASR, with ESPnet's ``st_inference`` flags and output files.

    python -m salign.bin.st_inference --task st  --data_path_and_name_and_type dump/test/feats.scp,speech,kaldi_ark ...
    python -m salign.bin.st_inference --task mt  --data_path_and_name_and_type data/test/text.en,src_text,text ...
    python -m salign.bin.st_inference --task asr --data_path_and_name_and_type dump/test/feats.scp,speech,kaldi_ark ...

Every option of ``espnet2.bin.st_inference`` is accepted (``--config decode.yaml`` included). Outputs are ESPnet's:
``<output_dir>/<n>best_recog/{text,token,token_int,score}``. ``--task st`` runs ESPnet's own ``inference`` loop on
our model; ``mt`` feeds the transcript through the shared textual encoder into the same beam search; ``asr`` is CTC
greedy decoding of the acoustic encoder over the source vocabulary.
"""
from __future__ import annotations

import logging
import sys
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from espnet2.fileio.datadir_writer import DatadirWriter
from espnet2.torch_utils.device_funcs import to_device
from espnet2.torch_utils.set_all_random_seed import set_all_random_seed
from espnet.nets.pytorch_backend.transformer.subsampling import TooShortUttError
from espnet.utils.cli_utils import get_commandline_args

from salign.tasks.st import SAlignSTTask, register_with_espnet

TASKS = ("st", "mt", "asr")
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
    """ESPnet's ``st_inference`` parser plus ``--task``."""
    from espnet2.bin.st_inference import get_parser as espnet_parser

    parser = espnet_parser()
    parser.description = __doc__.split("\n")[0]
    parser.add_argument("--task", choices=TASKS, default="st",
                        help="st: speech->target, mt: transcript->target, asr: speech->transcript (CTC)")
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


def _read_text(path: str) -> Iterator[Tuple[str, str]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(maxsplit=1)
            if not parts:
                continue
            yield parts[0], parts[1] if len(parts) > 1 else ""


def decode_mt(s2t, path: str, device: str) -> Iterator[Tuple[str, list]]:
    """Beam search from transcripts (a Kaldi ``utt text`` file) through the shared textual encoder."""
    model = s2t.st_model
    preprocess = SAlignSTTask.build_preprocess_fn(s2t.st_train_args, False)
    for key, line in _read_text(path):
        ids = preprocess(key, {"src_text": line})["src_text"]
        if len(ids) == 0:
            logging.warning("empty transcript for %s", key)
            yield key, [(" ", ["<space>"], [2], 0.0)] * s2t.nbest
            continue
        x = torch.as_tensor(np.asarray(ids), dtype=torch.long, device=device)[None]
        with torch.no_grad():
            enc, _ = model.encode_text(x, torch.tensor([x.size(1)], device=device))
            hyps = s2t.beam_search(x=enc[0], maxlenratio=s2t.maxlenratio, minlenratio=s2t.minlenratio)
        yield key, _results(s2t, hyps[: s2t.nbest])


def ctc_greedy(model, speech: torch.Tensor, lengths: torch.Tensor) -> List[Tuple[List[int], float]]:
    """CTC greedy decoding of the acoustic encoder: collapse repeats, drop blanks; returns (ids, log-prob) each."""
    aenc, alens = model.encode_speech(speech, lengths)
    logp = model.ctc.log_softmax(aenc)
    best, idx = logp.max(-1)
    out = []
    for b in range(idx.size(0)):
        seq = idx[b, : alens[b]].tolist()
        ids = [t for i, t in enumerate(seq) if t != model.blank_id and (i == 0 or t != seq[i - 1])]
        out.append((ids, float(best[b, : alens[b]].sum())))
    return out


def decode_speech(s2t, args, device: str, task: str) -> Iterator[Tuple[str, list]]:
    """ST beam search (as ESPnet's loop) or ASR CTC decoding over the speech data of ``args``."""
    loader = SAlignSTTask.build_streaming_iterator(
        args.data_path_and_name_and_type, dtype=args.dtype, batch_size=1, key_file=args.key_file,
        num_workers=args.num_workers, preprocess_fn=SAlignSTTask.build_preprocess_fn(s2t.st_train_args, False),
        collate_fn=SAlignSTTask.build_collate_fn(s2t.st_train_args, False),
        allow_variable_data_keys=args.allow_variable_data_keys, inference=True)
    for keys, batch in loader:
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
            yield keys[0], [(" ", ["<space>"], [2], 0.0)]


def inference(args) -> None:
    """Build ``Speech2Text`` on our model and write ESPnet's output files for the chosen task."""
    if args.batch_size > 1:
        raise SystemExit("--batch_size > 1 is not supported by this decoder yet; use --batch_size 1")
    if args.ngpu > 1:
        raise SystemExit("only single-GPU decoding is supported (--ngpu 0 or 1)")
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    device = "cuda" if args.ngpu >= 1 else "cpu"
    set_all_random_seed(args.seed)
    register_with_espnet()
    from espnet2.bin.st_inference import Speech2Text

    kwargs = {k: getattr(args, k) for k in S2T_KEYS}
    s2t = Speech2Text(device=device, **kwargs)
    if args.task == "mt":
        srcs = [p for p, name, _ in args.data_path_and_name_and_type if name == "src_text"]
        if len(srcs) != 1:
            raise SystemExit("--task mt needs --data_path_and_name_and_type <text file>,src_text,text")
        results = decode_mt(s2t, srcs[0], device)
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


def main(cmd: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point."""
    print(get_commandline_args(), file=sys.stderr)
    args = get_parser().parse_args(cmd)
    inference(args)


if __name__ == "__main__":
    main()
