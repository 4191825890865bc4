"""Score a decode dir (ST/MT: sacreBLEU BLEU, chrF, TER; ASR: WER, CER), collect all scores into RESULTS.md, or
test one decode against a baseline decode (bootstrap 95% intervals, paired bootstrap p-value).

Usage::

    python -m salign.bin.score --task st --hyp exp/st/decode_st_tst-COMMON/1best_recog/text \
        --ref data/tst-COMMON/text.es --out exp/st/decode_st_tst-COMMON/score \
        --set tst-COMMON --model st_salign [--tgt_lang es] [--bleu_tokenize 13a] [--allow_missing]
    # -> OUT/result.json (all numbers, signatures, counts) and OUT/result.txt
    python -m salign.bin.score --collect exp --out RESULTS.md --command "./run.sh --stage 13" [--title ...]
    # -> a Markdown table (rows: test sets; columns: ST BLEU, ST BLEU (lc), ST chrF, MT BLEU, MT BLEU (lc),
    #    ASR WER), the sacreBLEU signatures and the reproduce command; also printed to stdout
    python -m salign.bin.score --task st --hyp exp/st_ot/decode_st_tst-COMMON/1best_recog/text \
        --baseline_hyp exp/st_baseline/decode_st_tst-COMMON/1best_recog/text --ref data/tst-COMMON/text.es \
        --out exp/st_ot/decode_st_tst-COMMON/vs_baseline [--n_bootstrap 1000] [--seed 12345]
    # -> OUT/significance.json: BLEU and chrF of both with their bootstrap 95% intervals and the paired
    #    bootstrap p-value (salign.scoring.significance); also printed

HYP and REF are Kaldi-style ``utt text`` files matched by utterance id.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

from salign.scoring.score import TASKS, bleu_tokenizer, score_decode, write_results_table
from salign.scoring.significance import DEFAULT_SAMPLES, DEFAULT_SEED, format_paired, paired_test_files
from salign.utils.io import InputError, atomic_write, run_cli


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
    p.add_argument("--baseline_hyp", type=Path, default=None,
                   help="test mode: the baseline's hypotheses; paired bootstrap test of --hyp against them")
    p.add_argument("--n_bootstrap", type=int, default=DEFAULT_SAMPLES, help="bootstrap resamples (test mode)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the resampling (test mode)")
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
    if args.baseline_hyp is not None:
        if args.task == "asr":
            raise InputError("--baseline_hyp: the paired test is for translation (BLEU/chrF)", fix="--task st or mt")
        if args.n_bootstrap < 1:
            raise InputError(f"--n_bootstrap {args.n_bootstrap}: must be >= 1", fix="e.g. 1000")
        result = paired_test_files(args.hyp, args.baseline_hyp, args.ref, bleu_tokenizer(args.tgt_lang,
                                   args.bleu_tokenize), args.n_bootstrap, args.seed, args.allow_missing)
        with atomic_write(args.out / "significance.json") as f:
            json.dump(result, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(format_paired(result), end="")
        return 0
    print(score_decode(args.task, args.hyp, args.ref, args.out, args.allow_missing, args.bleu_tokenize,
                       args.test_set, args.model, args.tgt_lang), end="")
    return 0

if __name__ == "__main__":
    run_cli(main)
