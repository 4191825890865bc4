"""Scoring: BLEU/chrF/TER equal sacreBLEU's own, id matching errors, WER on a known pair, the results table."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import sacrebleu

from salign.bin import score
from salign.scoring.score import normalize_asr, score_asr
from salign.utils.io import InputError, run_cli

REFS = {"u1": "The cat is on the mat.", "u2": "There is a dog in the garden, isn't there?",
        "u3": "We went to Madrid last summer."}
HYPS = {"u3": "we went to madrid last summer .", "u1": "The cat sat on the mat.", "u2": "A dog is in the garden."}


def write(path: Path, d: dict) -> Path:
    path.write_text("".join(f"{k} {v}\n" for k, v in d.items()), encoding="utf-8")
    return path


def test_translation_scores_equal_sacrebleu(tmp_path):
    ref, hyp = write(tmp_path / "ref", REFS), write(tmp_path / "hyp", HYPS)
    out = tmp_path / "decode_st_tst-COMMON" / "score"
    score.main(["--task", "st", "--hyp", str(hyp), "--ref", str(ref), "--out", str(out), "--set", "tst-COMMON",
                "--model", "st1", "--tgt_lang", "en"])
    r = json.loads((out / "result.json").read_text())
    hyps, refs = [HYPS[u] for u in REFS], [list(REFS.values())]
    assert r["bleu"] == round(sacrebleu.corpus_bleu(hyps, refs).score, 2)
    assert r["bleu_lc"] == round(sacrebleu.corpus_bleu(hyps, refs, lowercase=True).score, 2)
    assert r["bleu_lc"] > r["bleu"]
    assert r["chrf"] == round(sacrebleu.corpus_chrf(hyps, refs).score, 2)
    assert r["ter"] == round(sacrebleu.corpus_ter(hyps, refs).score, 2)
    assert "tok:13a" in r["bleu_signature"] and "case:mixed" in r["bleu_signature"]
    assert "case:lc" in r["bleu_lc_signature"] and "nc:6" in r["chrf_signature"]
    assert (r["task"], r["set"], r["model"], r["num_utts"], r["num_missing"]) == ("st", "tst-COMMON", "st1", 3, 0)
    assert f"BLEU = {r['bleu']:.2f}" in (out / "result.txt").read_text()


def test_known_bleu_value_and_tokenizer_option(tmp_path):
    ref = write(tmp_path / "ref", {"a": "the cat sat on the mat"})
    out = tmp_path / "s"
    score.main(["--task", "mt", "--hyp", str(ref), "--ref", str(ref), "--out", str(out), "--bleu_tokenize", "intl"])
    r = json.loads((out / "result.json").read_text())
    assert r["bleu"] == 100.0 and r["ter"] == 0.0 and "tok:intl" in r["bleu_signature"]
    assert r["set"] == tmp_path.name  # default: the reference's directory name
    with pytest.raises(InputError, match="tokenizer 'nope'"):
        score.main(["--task", "mt", "--hyp", str(ref), "--ref", str(ref), "--out", str(out), "--bleu_tokenize",
                    "nope"])


def test_missing_and_unknown_utterances(tmp_path, capsys):
    ref = write(tmp_path / "ref", REFS)
    hyp = write(tmp_path / "hyp", {k: v for k, v in HYPS.items() if k != "u2"})
    out = tmp_path / "s"
    with pytest.raises(SystemExit) as exc:
        run_cli(score.main, ["--task", "st", "--hyp", str(hyp), "--ref", str(ref), "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(hyp) in err and "'u2'" in err and "--allow_missing" in err
    assert not (out / "result.json").exists()
    score.main(["--task", "st", "--hyp", str(hyp), "--ref", str(ref), "--out", str(out), "--allow_missing"])
    r = json.loads((out / "result.json").read_text())
    assert r["num_missing"] == 1
    hyps = [HYPS["u1"], "", HYPS["u3"]]
    assert r["bleu"] == round(sacrebleu.corpus_bleu(hyps, [list(REFS.values())]).score, 2)
    bad = write(tmp_path / "bad", dict(HYPS, u9="extra"))
    with pytest.raises(InputError, match=r"bad.*'u9' is not in the reference"):
        score.main(["--task", "st", "--hyp", str(bad), "--ref", str(ref), "--out", str(out), "--allow_missing"])


def test_wer_known_pair(tmp_path):
    ref = write(tmp_path / "ref", {"a": "Hello, World! Don't panic.", "b": "one two three four"})
    hyp = write(tmp_path / "hyp", {"a": "hello world do not panic", "b": "one two four five six"})
    out = tmp_path / "s"
    score.main(["--task", "asr", "--hyp", str(hyp), "--ref", str(ref), "--out", str(out)])
    r = json.loads((out / "result.json").read_text())
    # a: don't -> do (sub) + not (ins) = 2 errors / 4 words; b: three deleted, five->... : 1 del + 1 sub + 1 ins
    # (or equivalent) = 3 errors / 4 words -> 5 / 8
    assert r["wer"] == 62.5 and r["wer_counts"]["ref_len"] == 8
    assert normalize_asr("Hello, World! Don't panic.") == "hello world don't panic"
    assert score_asr(["x y"], [""])["wer"] == 100.0 and score_asr([""], [""])["wer"] == 0.0
    assert r["cer"] > 0


def test_collect_results_table(tmp_path, capsys):
    ref = write(tmp_path / "ref", REFS)
    hyp = write(tmp_path / "hyp", HYPS)
    exp = tmp_path / "exp"
    for task in ("st", "mt", "asr"):
        for test_set in ("tst-COMMON", "dev"):
            score.main(["--task", task, "--hyp", str(hyp), "--ref", str(ref), "--set", test_set, "--model", "m",
                        "--out", str(exp / "st_model" / f"weird_name_{task}_{test_set}" / "score")])
    capsys.readouterr()
    md = tmp_path / "RESULTS.md"
    score.main(["--collect", str(exp), "--out", str(md), "--command", "cd egs/mustc/en-es && ./run.sh",
                "--title", "MuST-C En-Es"])
    text = md.read_text()
    assert capsys.readouterr().out == text
    assert text.startswith("# MuST-C En-Es")
    assert "| Test set | ST BLEU | ST BLEU (lc) | ST chrF | MT BLEU | MT BLEU (lc) | ASR WER |" in text
    st = json.loads((exp / "st_model" / "weird_name_st_dev" / "score" / "result.json").read_text())
    asr = json.loads((exp / "st_model" / "weird_name_asr_dev" / "score" / "result.json").read_text())
    row = f"| dev | {st['bleu']:.2f} | {st['bleu_lc']:.2f} | {st['chrf']:.2f} | {st['bleu']:.2f} | " \
          f"{st['bleu_lc']:.2f} | {asr['wer']:.2f} |"
    assert row in text and "| tst-COMMON |" in text
    assert st["bleu_signature"] in text and "```bash\ncd egs/mustc/en-es && ./run.sh\n```" in text
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no result.json"):
        score.main(["--collect", str(tmp_path / "empty"), "--out", str(md), "--command", "x"])


def test_score_decode_defaults_set_name_and_tokenizer(tmp_path):
    from salign.scoring.score import bleu_tokenizer, score_decode

    assert bleu_tokenizer("zh") == "zh" and bleu_tokenizer("de") == "13a" and bleu_tokenizer("zh", "intl") == "intl"
    (tmp_path / "tst-HE").mkdir()
    ref, hyp = write(tmp_path / "tst-HE" / "text.en", REFS), write(tmp_path / "hyp", HYPS)
    text = score_decode("st", hyp, ref, tmp_path / "score")
    r = json.loads((tmp_path / "score" / "result.json").read_text())
    assert r["set"] == "tst-HE" and "tok:13a" in r["bleu_signature"]
    assert (tmp_path / "score" / "result.txt").read_text() == text
