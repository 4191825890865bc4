"""Scoring: sacreBLEU (ST/MT) and jiwer (ASR) scores per decode dir, the Markdown results table, and bootstrap
confidence intervals and paired significance tests of BLEU/chrF (:mod:`salign.scoring.significance`)."""
from salign.scoring.score import collect, normalize_asr, results_table, score_asr, score_files, score_translation
from salign.scoring.significance import bootstrap_ci, paired_bootstrap

__all__ = ["bootstrap_ci", "collect", "normalize_asr", "paired_bootstrap", "results_table", "score_asr", "score_files",
           "score_translation"]
