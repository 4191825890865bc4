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
The logic is :mod:`salign.decode.runner`.

A speech-LLM model (the config.yaml of ``salign.bin.llm_train``: it has ``lm:``) decodes with the same flags and
files: ST and ASR from speech, MT from the transcript, each behind its prompt, by the same batched beam search driving
the LM's key/value cache (:mod:`salign.llm.decode`; ``--maxlenratio`` relative to the input's length in LM positions,
``--maxlenratio -N``: at most N tokens); text from the LM's tokenizer (``hf``) or the token list (``tiny``).

``--plan FILE`` runs several decodes in one process, one shell-quoted option list per line (:mod:`salign.decode.plan`).
The recipe's decoding stage (stage 12) decodes every set as every task with ``--decode_sets ... --nj N --job J`` in N
jobs, then merges and stamps each decode dir with ``--merge`` (:mod:`salign.decode.stage`).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

from salign.decode.runner import DEFAULT_BATCH, TASKS
from salign.utils.io import InputError, run_cli


def get_parser() -> argparse.ArgumentParser:
    """ESPnet's ``st_inference`` parser plus ``--task``, the batched-decoding and the decoding-stage options."""
    from espnet2.bin.st_inference import get_parser as espnet_parser
    from espnet2.utils.types import str2bool

    from salign.decode.stage import add_stage_args

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
    add_stage_args(parser)
    parser.set_defaults(batch_size=None)
    for action in parser._actions:
        if action.dest == "batch_size":
            action.help = (f"utterances per batch (default: {DEFAULT_BATCH} with --batched, 1 otherwise; "
                           "--batched false needs 1)")
        if action.dest in ("output_dir", "data_path_and_name_and_type"):
            action.required = False  # the decoding stage and --plan lines give them per decode
    return parser


def parse(argv: List[str]) -> argparse.Namespace:
    """The options of one decode."""
    return get_parser().parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Optional[int]:
    """Command-line entry point: one decode, a ``--plan`` of decodes, or a job / the merge of the decoding stage."""
    from espnet.utils.cli_utils import get_commandline_args

    from salign.decode.plan import run_plan, split_plan_option
    from salign.decode.runner import decode
    from salign.decode.stage import run_stage

    print(get_commandline_args(), file=sys.stderr)
    plan_file, argv = split_plan_option(list(sys.argv[1:] if argv is None else argv))
    if plan_file is not None:
        run_plan(plan_file, argv, parse)
        return 0
    args = parse(argv)
    if args.decode_sets is not None:
        run_stage(args, argv, parse)
        return 0
    for flag, value in (("--output_dir", args.output_dir), ("--data_path_and_name_and_type",
                                                            args.data_path_and_name_and_type)):
        if not value:
            raise InputError(f"{flag} is required", fix=f"give {flag}")
    decode(args)
    return 0


if __name__ == "__main__":
    run_cli(main)
