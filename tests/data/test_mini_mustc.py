"""salign.bin.gen_mini_mustc at a tiny size (8/2/2/2 segments; a few seconds once the pool translation is cached
under $SALIGN_CACHE or ~/.cache/salign — the very first run translates the whole pool, ~15 s)."""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import soundfile

from salign.bin import data_utils, gen_mini_mustc, prep_mustc
from salign.data import mini_mustc
from salign.data.mustc import parse_yaml

TOOLS = ("sox", "flite", "espeak-ng", "apertium")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS) or not mini_mustc.FORTUNES_DIR.is_dir(),
                                reason="needs sox flite espeak-ng apertium apertium-eng-spa fortunes")
SIZES = {"train": 8, "dev": 2, "tst-COMMON": 2, "tst-HE": 2}
ARGS = ["--n_train", "8", "--n_dev", "2", "--n_tst", "2", "--utts_per_talk", "3"]


def _gen(out: Path, *extra: str) -> Path:
    rc = gen_mini_mustc.main(["--out", str(out), *ARGS, *extra])
    assert rc == 0
    return out / "en-es"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return _gen(tmp_path_factory.mktemp("mini") / "c", "--seed", "3", "--nj", "2")


def _files(pair: Path) -> dict:
    return {str(p.relative_to(pair)): p.read_bytes() for p in sorted(pair.rglob("*")) if p.is_file()}


def test_layout_and_consistency(corpus):
    assert json.loads((corpus / ".mini_mustc.json").read_text())["options"]["n_train"] == 8
    for split, n in SIZES.items():
        d = corpus / "data" / split
        entries = parse_yaml(d / "txt" / f"{split}.yaml")
        en = (d / "txt" / f"{split}.en").read_text(encoding="utf-8").splitlines()
        es = (d / "txt" / f"{split}.es").read_text(encoding="utf-8").splitlines()
        assert len(entries) == len(en) == len(es) == n
        lines = (d / "txt" / f"{split}.yaml").read_text().splitlines()
        assert all(re.fullmatch(r"- \{duration: [\d.]+, offset: [\d.]+, rw: \d+, speaker_id: spk\.\d+, "
                                r"wav: ted_\d+\.wav\}", ln) for ln in lines), lines[0]
        wavs = {p.name for p in (d / "wav").iterdir()}
        assert wavs == {e["wav"] for _, e in entries}
        prev_end = {}
        for (_, e), src, tgt in zip(entries, en, es):
            info = soundfile.info(str(d / "wav" / e["wav"]))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert e["offset"] > prev_end.get(e["wav"], 0.0)  # silence between utterances
            assert e["offset"] + e["duration"] <= info.frames / 16000
            assert round(e["offset"] * 16000, 6) == int(round(e["offset"] * 16000))  # sample-exact
            prev_end[e["wav"]] = e["offset"] + e["duration"]
            assert e["rw"] == len(src.split()) and 5 <= e["rw"] <= 20
            assert src[0].isupper() and src[-1] in ".!?" and tgt[-1] in ".!?"
            assert not re.search(r"[*#@]|\s[,.;:!?]|\s\s", tgt)
            if src.endswith("?"):
                assert tgt.startswith("¿")
    talks = [p.name for s in SIZES for p in (corpus / "data" / s / "wav").iterdir()]
    assert len(talks) == len(set(talks)) == 3 + 1 + 1 + 1  # 8 train utts / 3 per talk -> 3 talks


def test_deterministic_by_seed(corpus, tmp_path):
    again = _gen(tmp_path / "again", "--seed", "3", "--nj", "1")
    assert _files(again) == _files(corpus)  # text, yaml and audio byte-identical, independent of --nj
    other = _gen(tmp_path / "other", "--seed", "4")
    assert (other / "data/train/txt/train.en").read_text() != (corpus / "data/train/txt/train.en").read_text()


def test_rerun_is_instant_and_options_change_rebuilds(corpus, tmp_path, capsys):
    out = tmp_path / "c"
    shutil.copytree(corpus, out / "en-es")
    t = time.time()
    _gen(out, "--seed", "3")
    assert time.time() - t < 1.0
    assert "already complete with the same options" in capsys.readouterr().out
    pair = _gen(out, "--seed", "3", "--n_tst", "1")
    assert "rebuilding" in capsys.readouterr().out
    assert len((pair / "data/tst-HE/txt/tst-HE.en").read_text().splitlines()) == 1
    assert not [p for p in out.iterdir() if p.name != "en-es"]  # no temp dirs left behind


def test_prep_and_validate_generated_corpus(corpus, tmp_path, cli):
    rc, _, err = cli(prep_mustc.main, ["--mustc_root", str(corpus.parent), "--tgt", "es", "--out",
                                       str(tmp_path / "data")])
    assert rc == 0, err
    for split in SIZES:
        rc, out, err = cli(data_utils.main, ["validate", "--data", str(tmp_path / "data" / split)])
        assert rc == 0 and f"({SIZES[split]} utterances)" in out, err


def test_unsupported_target(tmp_path, cli):
    rc, _, err = cli(gen_mini_mustc.main, ["--out", str(tmp_path), "--tgt", "de"])
    assert rc == 2 and "supports only --tgt es" in err and not (tmp_path / "en-de").exists()


def test_missing_tool_names_package(tmp_path, cli, monkeypatch):
    real = shutil.which
    monkeypatch.setattr(mini_mustc.shutil, "which", lambda c: None if c == "flite" else real(c))
    rc, _, err = cli(gen_mini_mustc.main, ["--out", str(tmp_path), *ARGS])
    assert rc == 2 and "'flite' not found (fix: sudo apt-get install -y flite)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "en-es").exists()


def test_refuses_foreign_dir(tmp_path, cli):
    (tmp_path / "en-es" / "data").mkdir(parents=True)
    rc, _, err = cli(gen_mini_mustc.main, ["--out", str(tmp_path), *ARGS])
    assert rc == 2 and "not built by gen_mini_mustc" in err


def test_bad_sizes(tmp_path, cli):
    rc, _, err = cli(gen_mini_mustc.main, ["--out", str(tmp_path), "--n_dev", "0"])
    assert rc == 2 and "must be >= 1" in err
