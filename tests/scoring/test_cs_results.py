"""The code-switch recipe's results page: systems x sets from the scores, mix_test scored as one corpus, routing and
time tables."""
from __future__ import annotations

import json
import re

import pytest

from salign.scoring.cs_results import mix_scores, results_page
from salign.scoring.score import score_decode, score_translation
from salign.utils.io import InputError

REFS = {"cs_test": {"c1": "the cat sat on the mat", "c2": "a dog ran"},
        "es_test": {"s1": "it is raining today", "s2": "we like green tea"},
        "en_test": {"e1": "hello there"}}
HYPS = {"cs_test": {"c1": "the cat sat on a mat", "c2": "a dog ran"},
        "es_test": {"s1": "it rains today", "s2": "we like tea"},
        "en_test": {"e1": "hello there"}}


@pytest.fixture
def exp(tmp_path):
    dump, exp = tmp_path / "dump", tmp_path / "exp"
    for dset, ref in REFS.items():
        (dump / dset).mkdir(parents=True)
        (dump / dset / "text.en").write_text("".join(f"{k} {v}\n" for k, v in ref.items()))
        (dump / dset / "text.cs").write_text("".join(f"{k} {v}\n" for k, v in ref.items()))
        for task in ("st", "asr"):
            d = exp / "st_main" / f"decode_{task}_{dset}"
            (d / "1best_recog").mkdir(parents=True)
            (d / "1best_recog" / "text").write_text("".join(f"{k} {v}\n" for k, v in HYPS[dset].items()))
            score_decode(task, d / "1best_recog" / "text", dump / dset / "text.en", d / "score", test_set=dset)
    return tmp_path


def test_mix_test_is_one_corpus_of_cs_and_es(exp):
    mix = mix_scores(exp / "exp", "main", exp / "dump", "en")
    whole = score_translation([*HYPS["cs_test"].values(), *HYPS["es_test"].values()],
                              [*REFS["cs_test"].values(), *REFS["es_test"].values()])
    assert mix["bleu"] == whole["bleu"] and mix["chrf"] == whole["chrf"]


def test_page_has_the_rows_routing_and_times(exp):
    routing = exp / "routing.json"
    stats = {"frames": 10.0, "route_en": 0.75, "route_es": float("nan"), "route_all": 0.75, "entropy": 0.5,
             **{f"load_e{i}": 0.25 for i in range(4)}}
    routing.write_text(json.dumps({"st_main": {"cs_test": stats, "en_test": None}}))
    timing = exp / "timing.tsv"
    timing.write_text("13 main_s1\t12\n13 main_s1\t20\nstage 18 routing\t3\n")
    page = results_page(exp / "exp", exp / "dump", [("main", "the method")], "./run.sh", routing=routing,
                        timing=timing, notes="A note.")
    row = next(line for line in page.splitlines() if line.startswith("| main | the method"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 11 and all(re.fullmatch(r"\d+\.\d\d", c) for c in cells[2:])
    assert cells[8:] == ["11.11", "0.00", "37.50"]  # WER cs (1 of 9 words), en, es (3 of 8)
    assert "| main | cs_test | 10 | 0.750 | – | 0.750 | 0.500 | 0.25 / 0.25 / 0.25 / 0.25 |" in page
    assert "| main | en_test | – |" in page
    assert "| 13 main_s1 | 20 |" in page and "| **total** | **23** |" in page
    assert page.index("A note.") < page.index("./run.sh")


def test_a_missing_score_is_one_error(exp):
    with pytest.raises(InputError, match="no score"):
        results_page(exp / "exp", exp / "dump", [("linear", "x")], "./run.sh")
