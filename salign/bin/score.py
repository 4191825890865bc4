"""Score a decode dir (ST/MT: sacreBLEU BLEU, chrF, TER; ASR: WER, CER) or collect all scores into RESULTS.md.

Usage::

    python -m salign.bin.score --task st --hyp exp/st/decode_st_tst-COMMON/1best_recog/text \
        --ref data/tst-COMMON/text.es --out exp/st/decode_st_tst-COMMON/score \
        --set tst-COMMON --model st_salign [--tgt_lang es] [--bleu_tokenize 13a] [--allow_missing]
    # -> OUT/result.json (all numbers, signatures, counts) and OUT/result.txt
    python -m salign.bin.score --collect exp --out RESULTS.md --command "./run.sh --stage 13" [--title ...]
    # -> a Markdown table (rows: test sets; columns: ST BLEU, ST BLEU (lc), ST chrF, MT BLEU, MT BLEU (lc),
    #    ASR WER), the sacreBLEU signatures and the reproduce command; also printed to stdout

HYP and REF are Kaldi-style ``utt text`` files matched by utterance id.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from salign.scoring.score import TASKS, score_decode, write_results_table
from salign.utils.io import InputError, run_cli


def get_parser() -> argparse.ArgumentParser:
    """Command-line options of score."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=TASKS, help="what was decoded (score mode)")
    p.add_argument("--hyp", type=Path, help="hypotheses, e.g. DECODE_DIR/1best_recog/text")
    p.add_argument("--ref", type=Path, help="references, e.g. data/tst-COMMON/text.es")
    p.add_argument("--out", type=Path, required=True, help="score dir (score mode) or RESULTS.md (collect mode)")
    p.add_argument("--set", dest="test_set", default=None, help="test set name (default: REF's parent dir name)")
    p.add_argument("--model", default="", help="model/experiment name stored in result.json")
    p.add_argument("--tgt_lang", default=None, help="target language (picks the BLEU tokenizer for zh/ja/ko)")
    p.add_argument("--bleu_tokenize", default=None, help="sacreBLEU tokenizer (default 13a; e.g. intl, zh)")
    p.add_argument("--allow_missing", action="store_true", help="score missing hypotheses as empty")
    p.add_argument("--collect", type=Path, default=None, metavar="EXPDIR", help="collect mode: exp dir to scan")
    p.add_argument("--command", default=None, help="reproduce command printed under the table (collect mode)")
    p.add_argument("--title", default="Results", help="table title (collect mode)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: score one decode, or collect every result.json below --collect."""
    args = get_parser().parse_args(argv)
    if args.collect is not None:
        if args.command is None:
            raise InputError("--collect needs --command \"<the command that reproduces these results>\"")
        print(write_results_table(args.collect, args.out, args.command, args.title), end="")
        return 0
    for name in ("task", "hyp", "ref"):
        if getattr(args, name) is None:
            raise InputError(f"--{name} is required when scoring (or use --collect EXPDIR)")
    print(score_decode(args.task, args.hyp, args.ref, args.out, args.allow_missing, args.bleu_tokenize,
                       args.test_set, args.model, args.tgt_lang), end="")
    return 0

if __name__ == "__main__":
    run_cli(main)
