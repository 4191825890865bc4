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

A ``--config`` (decoding options) is checked first, as the recipe's driver checks it (``salign.bin.check_config
--decode_config``): a problem is one ERROR line naming the file and line, exit status 2, before anything is decoded.

``--plan FILE`` runs several decodes in one process, one shell-quoted option list per line (:mod:`salign.decode.plan`).
The recipe's decoding stage (stage 12) decodes every set as every task with ``--decode_sets ... --nj N --job J`` in N
jobs, then merges and stamps each decode dir with ``--merge`` (:mod:`salign.decode.stage`).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

from salign.decode.parser import get_parser
from salign.utils.io import InputError, run_cli

__all__ = ["get_parser", "parse", "main"]


def parse(argv: List[str]) -> argparse.Namespace:
    """The options of one decode."""
    return get_parser().parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Optional[int]:
    """Command-line entry point: one decode, a ``--plan`` of decodes, or a job / the merge of the decoding stage."""
    from espnet.utils.cli_utils import get_commandline_args

    from salign.decode.plan import run_plan, split_plan_option
    from salign.decode.runner import decode
    from salign.decode.stage import run_stage
    from salign.utils.config_check import check_entry_config

    print(get_commandline_args(), file=sys.stderr)
    plan_file, argv = split_plan_option(list(sys.argv[1:] if argv is None else argv))
    check_entry_config(argv, "decode", "st_inference")  # the decoding config, as the driver checks it
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
