"""The command line of ``salign.bin.st_inference``: ESPnet's ``st_inference`` options plus salign's (the task, batched
decoding, the decoding stage's). Here, apart from the tool, so that the config checker
(:mod:`salign.utils.config_check`) can read it without importing the tool that calls the checker."""
from __future__ import annotations

import argparse

from salign.decode.runner import DEFAULT_BATCH, TASKS

__all__ = ["DESCRIPTION", "get_parser"]

DESCRIPTION = ("Decode the unified S-Align model as ST, MT or ASR, with ESPnet's ``st_inference`` flags and output "
               "files.")


def get_parser() -> argparse.ArgumentParser:
    """ESPnet's ``st_inference`` parser plus ``--task``, the batched-decoding and the decoding-stage options."""
    from espnet2.bin.st_inference import get_parser as espnet_parser
    from espnet2.utils.types import str2bool

    from salign.decode.stage import add_stage_args

    parser = espnet_parser()
    parser.description = DESCRIPTION
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
