"""Byte-order marks and carriage returns in text (issue 13, item 3).

* A UTF-8 BOM on the MuST-C target text (or on any Kaldi table: a hand-made reference, a hypothesis) is dropped
  where it is read, so it never reaches a data dir or a BLEU reference: same files, same score as without it.
* A CR inside a sentence is one line naming the file and the line (a universal-newline reader used to cut the
  sentence in two: "line counts differ" with no line, or a bogus key); nothing is written; the fix re-runs.

Issue 22 (items 3 and 10):

* Decomposed accents (NFD, e.g. text saved on macOS) on either side score as the composed ones: identical sentences
  score 100 (they scored 13.6); a MuST-C target in NFD reaches the data dir in NFC, as its transcript did.
* Files with old-Mac line ends (CR only) are read line by line again, and the fix suggested for a CR inside a line,
  run as given, keeps every line (the one it gave joined every line of such a file into one).
"""
from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import List, Tuple

import pytest

from salign.data.kaldi import read_table
from salign.utils.io import InputError
from tests.data.conftest import make_split

BOM = "\ufeff"


def run(module: str, *args) -> Tuple[int, List[str]]:
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    return proc.returncode, (proc.stdout + proc.stderr).splitlines()


def one_error(rc: int, lines: List[str], tool: str) -> str:
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    assert rc == 2 and len(errors) == 1 and errors[0].startswith(f"ERROR [{tool}]: "), lines
    assert not any("Traceback" in ln for ln in lines), lines
    return errors[0]


def prep(root: Path, out: Path) -> Tuple[int, List[str]]:
    return run("salign.bin.prep_mustc", "--mustc_root", root, "--tgt", "de", "--splits", "train", "--out", out)


def test_a_bom_on_the_target_text_does_not_reach_the_data_dir(tmp_path):
    txt = make_split(tmp_path / "clean" / "en-de", "train", "de")
    assert prep(tmp_path / "clean", tmp_path / "ref")[0] == 0
    txt = make_split(tmp_path / "bom" / "en-de", "train", "de")
    for name in ("train.de", "train.en"):
        (txt / name).write_bytes(b"\xef\xbb\xbf" + (txt / name).read_bytes())
    # a CRLF file as well: the CR before LF is part of the line end, not of the sentence
    (txt / "train.de").write_bytes((txt / "train.de").read_bytes().replace(b"\n", b"\r\n"))
    rc, lines = prep(tmp_path / "bom", tmp_path / "data")
    assert rc == 0, lines
    for name in ("text.de", "text.en", "text.en.tc"):
        assert (tmp_path / "data" / "train" / name).read_text(encoding="utf-8") == \
            (tmp_path / "ref" / "train" / name).read_text(encoding="utf-8"), name


def test_a_bom_in_a_reference_or_hypothesis_gives_the_same_bleu(tmp_path):
    ref = tmp_path / "ref"
    ref.write_text("u1 Hallo Welt !\nu2 Es ist gut .\n", encoding="utf-8")
    hyp = tmp_path / "hyp"
    hyp.write_text("u1 Hallo Welt !\nu2 Es ist schlecht .\n", encoding="utf-8")
    bom_ref = tmp_path / "bom_ref"  # a BOM at the start of the file and on a line (files joined with cat)
    bom_ref.write_text(f"{BOM}u1 Hallo Welt !\n{BOM}u2 {BOM}Es ist gut .\n", encoding="utf-8")
    scores = []
    for r in (ref, bom_ref):
        out = tmp_path / f"score_{r.name}"
        rc, lines = run("salign.bin.score", "--task", "st", "--hyp", hyp, "--ref", r, "--out", out, "--tgt_lang", "de")
        assert rc == 0, lines
        scores.append(json.loads((out / "result.json").read_text())["bleu"])
    assert scores[0] == scores[1]
    assert read_table(bom_ref) == read_table(ref)


def test_a_cr_inside_a_target_sentence_names_file_and_line(tmp_path):
    txt = make_split(tmp_path / "mustc" / "en-de", "train", "de")
    tgt = txt / "train.de"
    good = tgt.read_bytes()
    tgt.write_bytes(good.replace(b"Es ist gut.", b"Es ist\rgut."))
    rc, lines = prep(tmp_path / "mustc", tmp_path / "data")
    line = one_error(rc, lines, "prep_mustc")
    assert line.startswith(f"ERROR [prep_mustc]: {tgt}:2: carriage return (CR) inside the line (fix: replace it by "
                           "a space"), line
    assert not (tmp_path / "data").exists()
    tgt.write_bytes(good)
    assert prep(tmp_path / "mustc", tmp_path / "data")[0] == 0


def test_a_cr_inside_a_kaldi_table_names_file_and_line(tmp_path):
    hyp, ref = tmp_path / "hyp", tmp_path / "ref"
    ref.write_text("u1 Hallo Welt !\nu2 Es ist gut .\n", encoding="utf-8")
    hyp.write_bytes(b"u1 Hallo Welt !\r\nu2 Es ist\rgut .\r\n")  # CRLF line ends are fine, the inner CR is not
    with pytest.raises(InputError, match=r"hyp:2: carriage return \(CR\) inside the line"):
        read_table(hyp)
    out = tmp_path / "score"
    rc, lines = run("salign.bin.score", "--task", "st", "--hyp", hyp, "--ref", ref, "--out", out, "--tgt_lang", "de")
    assert f"{hyp}:2: carriage return (CR) inside the line" in one_error(rc, lines, "score")
    assert not out.exists()
    hyp.write_bytes(b"u1 Hallo Welt !\r\nu2 Es ist gut .\r\n")
    rc, lines = run("salign.bin.score", "--task", "st", "--hyp", hyp, "--ref", ref, "--out", out, "--tgt_lang", "de")
    assert rc == 0, lines
    assert json.loads((out / "result.json").read_text())["bleu"] == pytest.approx(100.0)


NFD = unicodedata.normalize("NFD", "u1 ¿Qué pasó con la canción?\nu2 Él está aquí, señor.\n")
NFC = unicodedata.normalize("NFC", NFD)


def bleu(tmp_path: Path, hyp_text: str, ref_text: str, name: str) -> dict:
    hyp, ref, out = tmp_path / f"{name}.hyp", tmp_path / f"{name}.ref", tmp_path / f"{name}.score"
    hyp.write_text(hyp_text, encoding="utf-8")
    ref.write_text(ref_text, encoding="utf-8")
    rc, lines = run("salign.bin.score", "--task", "st", "--hyp", hyp, "--ref", ref, "--out", out, "--tgt_lang", "es")
    assert rc == 0, lines
    return json.loads((out / "result.json").read_text())


def test_decomposed_accents_on_either_side_score_as_the_same_sentence(tmp_path):
    assert NFD != NFC  # the files differ in bytes, not in text
    for name, hyp, ref in (("nfd_ref", NFC, NFD), ("nfd_hyp", NFD, NFC), ("both", NFD, NFD)):
        result = bleu(tmp_path, hyp, ref, name)
        assert (result["bleu"], result["chrf"]) == (100.0, 100.0), (name, result["bleu"], result["chrf"])


def test_a_decomposed_target_reaches_the_data_dir_composed(tmp_path):
    make_split(tmp_path / "nfc" / "en-de", "train", "de")
    assert prep(tmp_path / "nfc", tmp_path / "ref")[0] == 0
    txt = make_split(tmp_path / "nfd" / "en-de", "train", "de")
    for name in ("train.de", "train.en"):
        (txt / name).write_text(unicodedata.normalize("NFD", (txt / name).read_text(encoding="utf-8")),
                                encoding="utf-8")
    assert "schön" not in (txt / "train.de").read_text(encoding="utf-8")  # really decomposed
    rc, lines = prep(tmp_path / "nfd", tmp_path / "data")
    assert rc == 0, lines
    for name in ("text.de", "text.en", "text.en.tc"):
        assert (tmp_path / "data" / "train" / name).read_text(encoding="utf-8") == \
            (tmp_path / "ref" / "train" / name).read_text(encoding="utf-8"), name


def test_old_mac_line_ends_are_lines_again(tmp_path):
    make_split(tmp_path / "lf" / "en-de", "train", "de")
    assert prep(tmp_path / "lf", tmp_path / "ref")[0] == 0
    txt = make_split(tmp_path / "cr" / "en-de", "train", "de")
    for name in ("train.de", "train.en"):
        (txt / name).write_bytes((txt / name).read_bytes().replace(b"\n", b"\r"))
    rc, lines = prep(tmp_path / "cr", tmp_path / "data")
    assert rc == 0, lines
    for name in ("text.de", "text.en"):
        assert (tmp_path / "data" / "train" / name).read_bytes() == (tmp_path / "ref" / "train" / name).read_bytes()
    table = tmp_path / "table"
    table.write_bytes(b"u1 Hallo Welt !\ru2 Es ist gut .\r")
    assert read_table(table) == {"u1": "Hallo Welt !", "u2": "Es ist gut ."}


def test_the_fix_for_a_cr_inside_a_line_keeps_every_line(tmp_path):
    """The fix is run as the error line gives it (bash, GNU sed): every line stays a line, CRLF ends included."""
    hyp = tmp_path / "hyp"
    hyp.write_bytes(b"u1 Hallo Welt !\r\nu2 Es ist\rgut .\r\nu3 Danke .\r\n")
    with pytest.raises(InputError) as exc:
        read_table(hyp)
    message = str(exc.value)
    assert message.startswith(f"{hyp}:2: carriage return (CR) inside the line"), message
    command = message.split("(fix: replace it by a space, e.g. ", 1)[1].rsplit(")", 1)[0]
    subprocess.run(["bash", "-c", command], check=True)
    assert read_table(hyp) == {"u1": "Hallo Welt !", "u2": "Es ist gut .", "u3": "Danke ."}
