"""Scoring: sacreBLEU (ST/MT) and jiwer (ASR) scores per decode dir, and the Markdown results table."""
from salign.scoring.score import collect, normalize_asr, results_table, score_asr, score_files, score_translation

__all__ = ["collect", "normalize_asr", "results_table", "score_asr", "score_files", "score_translation"]
