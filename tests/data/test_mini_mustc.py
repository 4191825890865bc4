"""salign.bin.gen_mini_mustc at a tiny size (8/2/2/2 segments, +3 of tst-UNSEEN; a few seconds once the pools'
translations are cached under $SALIGN_CACHE or ~/.cache/salign — the very first run translates the strict pool, ~15 s,
and the wide text-only pool, ~10-15 s)."""
from __future__ import annotations

import json
import random
import re
import shutil
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


def _mtimes(root: Path) -> dict:
    """Every file under ``root`` with its size and modification time: equal after a run means it wrote nothing."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


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


def test_rerun_writes_nothing_and_options_change_rebuilds(corpus, tmp_path, capsys):
    out = tmp_path / "c"
    shutil.copytree(corpus, out / "en-es")
    before = _mtimes(out)
    _gen(out, "--seed", "3")
    assert _mtimes(out) == before  # no file rewritten (how long it takes: not asserted, see test_mustc)
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


# ---------------------------------------------------------- held-out voices (--n_tst_unseen), --n_mt_extra -1
UNSEEN_ARGS = ("--seed", "5", "--utts_per_talk", "1", "--n_tst_unseen", "3", "--n_mt_extra", "-1")


@pytest.fixture(scope="module")
def unseen(tmp_path_factory) -> Path:
    """8/2/2/2 segments + 3 of tst-UNSEEN, one utterance per talk (17 talks, so 17 voice draws), every MT pair."""
    return _gen(tmp_path_factory.mktemp("unseen") / "c", *UNSEEN_ARGS)


def _voices(pair: Path) -> list:
    lines = (pair / mini_mustc.VOICES_TSV).read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == ["split", "wav", "speaker_id", "engine", "voice", "parameters"]
    return [dict(zip(lines[0].split("\t"), ln.split("\t"))) for ln in lines[1:]]


def _held_out(row: dict) -> bool:
    base = row["voice"].split("+")[0]
    return base in (mini_mustc.HELD_OUT_FLITE if row["engine"] == "flite" else mini_mustc.HELD_OUT_ESPEAK)


def test_default_options_keep_the_stamp_and_layout(corpus):
    assert mini_mustc.MiniMustcOptions(n_train=8, n_dev=2, n_tst=2, seed=3, utts_per_talk=3).as_dict() == {
        "tool": "salign.bin.gen_mini_mustc", "format": 1, "tgt": "es", "n_train": 8, "n_dev": 2, "n_tst": 2,
        "seed": 3, "utts_per_talk": 3, "n_mt_extra": 0}  # the keys of before: existing corpora are not rebuilt
    assert json.loads((corpus / ".mini_mustc.json").read_text())["options"] == \
        mini_mustc.MiniMustcOptions(n_train=8, n_dev=2, n_tst=2, seed=3, utts_per_talk=3).as_dict()
    assert sorted(p.name for p in (corpus / "data").iterdir()) == sorted(mini_mustc.SPLITS)
    assert not (corpus / mini_mustc.VOICES_TSV).exists() and not (corpus / "mt-extra").exists()
    opts = mini_mustc.MiniMustcOptions(n_mt_extra=-1, n_tst_unseen=4).as_dict()
    assert opts["mt_extra_pools"].startswith("strict+wide") and opts["n_tst_unseen"] == 4
    assert opts["held_out"] == {"flite": ["rms"], "espeak": ["en-gb-scotland"]}


def test_voice_lists_split_the_inventory():
    seen, unseen = mini_mustc.voice_lists("seen"), mini_mustc.voice_lists("unseen")
    assert mini_mustc.voice_lists(None) == (mini_mustc.FLITE_VOICES, mini_mustc.ESPEAK_VOICES)
    for engine in (0, 1):
        assert seen[engine] and unseen[engine] and not set(seen[engine]) & set(unseen[engine])
        assert sorted(seen[engine] + unseen[engine]) == sorted(mini_mustc.voice_lists(None)[engine])
    for lists in (seen, unseen):  # both parts keep the ~70/30 flite/espeak-ng mix
        draws = [mini_mustc._voice(random.Random(i), lists) for i in range(2000)]
        assert 0.65 < sum(d["engine"] == "flite" for d in draws) / len(draws) < 0.75
        assert {d["voice"].split("+")[0] for d in draws} == set(lists[0]) | set(lists[1])


def test_held_out_voices_only_in_tst_unseen(unseen, tmp_path, cli):
    rows = _voices(unseen)
    sizes = {**SIZES, "tst-UNSEEN": 3}
    assert [r["split"] for r in rows] == [s for s, n in sizes.items() for _ in range(n)]  # one talk per utterance
    for row in rows:
        assert _held_out(row) == (row["split"] == "tst-UNSEEN"), row
        yml = (unseen / "data" / row["split"] / "txt" / f"{row['split']}.yaml").read_text()
        assert f"speaker_id: {row['speaker_id']}, wav: {row['wav']}" in yml
    assert {r["wav"] for r in rows} == {p.name for s in sizes for p in (unseen / "data" / s / "wav").iterdir()}
    assert json.loads((unseen / ".mini_mustc.json").read_text())["options"]["held_out"]["flite"] == ["rms"]
    rc, _, err = cli(prep_mustc.main, ["--mustc_root", str(unseen.parent), "--tgt", "es", "--out",
                                       str(tmp_path / "data"), "--splits", ",".join(sizes)])
    assert rc == 0, err
    rc, out, err = cli(data_utils.main, ["validate", "--data", str(tmp_path / "data" / "tst-UNSEEN")])
    assert rc == 0 and "(3 utterances)" in out, err


def test_held_out_build_is_deterministic_and_keeps_the_text(unseen, corpus, tmp_path):
    again = _gen(tmp_path / "again", *UNSEEN_ARGS, "--nj", "1")
    assert _files(again) == _files(unseen)  # audio, text, voices.tsv and mt-extra byte-identical
    # the same seed without held-out voices picks the same sentences for the four seen-voice splits
    plain = mini_mustc.MiniMustcOptions(n_train=8, n_dev=2, n_tst=2, seed=5, utts_per_talk=1)
    pairs = mini_mustc.translated_pool()
    order = list(range(len(pairs)))
    random.Random(plain.seed).shuffle(order)
    pos = 0
    for split, n in {**SIZES, "tst-UNSEEN": 3}.items():
        en = (unseen / "data" / split / "txt" / f"{split}.en").read_text(encoding="utf-8").splitlines()
        assert en == [pairs[i][0] for i in order[pos:pos + n]], split
        pos += n


def test_mt_extra_all_adds_the_wide_pool(unseen):
    en = (unseen / "mt-extra" / "mt-extra.en").read_text(encoding="utf-8").splitlines()
    es = (unseen / "mt-extra" / "mt-extra.es").read_text(encoding="utf-8").splitlines()
    assert len(en) == len(es) and all(en) and all(es)
    spoken = [ln for s in (*SIZES, "tst-UNSEEN")
              for ln in (unseen / "data" / s / "txt" / f"{s}.en").read_text(encoding="utf-8").splitlines()]
    keys = [mini_mustc._norm_key(s) for s in en]
    assert len(set(keys)) == len(keys) and not set(keys) & {mini_mustc._norm_key(s) for s in spoken}
    strict = mini_mustc.translated_pool()
    wide = mini_mustc.translated_wide_pool()
    assert len(en) > len(strict) - len(spoken) + 0.9 * len(wide)  # every pair left over, a few duplicates aside
    wide_en = {p[0] for p in wide}
    assert sum(s in wide_en for s in en) > 0.9 * len(wide)
    assert not re.search(r"[*#@\t]", "".join(es))


def test_positive_mt_extra_keeps_the_strict_leftovers(tmp_path):
    pair = _gen(tmp_path / "c", "--seed", "3", "--n_mt_extra", "5")
    pairs = mini_mustc.translated_pool()
    order = list(range(len(pairs)))
    random.Random(3).shuffle(order)
    want = [pairs[i] for i in order[sum(SIZES.values()):sum(SIZES.values()) + 5]]
    assert (pair / "mt-extra" / "mt-extra.en").read_text(encoding="utf-8") == "".join(e + "\n" for e, _ in want)
    assert (pair / "mt-extra" / "mt-extra.es").read_text(encoding="utf-8") == "".join(s + "\n" for _, s in want)


def test_wide_pool_is_text_the_strict_filter_rejects():
    strict, wide = mini_mustc.sentence_pool(), mini_mustc.wide_sentence_pool()
    assert wide and not set(wide) & set(strict) and len(set(wide)) == len(wide)
    assert all(mini_mustc._wide_ok(s) for s in wide[:500])
    rejected = [s for s in wide if not mini_mustc._SENTENCE.match(s) or not 5 <= len(s.split()) <= 20]
    assert len(rejected) > 0.95 * len(wide)  # the others come from splitting after a closing quote/parenthesis
    for pattern in (r"\d", '"', ":", r"\(", r"^\S+ \S+ \S+[.!?]$"):  # digits, quotes, colons, parentheses, 3 words
        assert any(re.search(pattern, s) for s in wide), pattern
    pairs = mini_mustc.translated_wide_pool()
    assert {en for en, _ in pairs} <= set(wide) and len(pairs) > 1000
    assert not any(re.search(r"[*#@]", es) or es.count('"') % 2 for _, es in pairs)


@pytest.mark.parametrize("sentence, ok", [
    ('He said: "Give me 4,000 dollars (now)."', True),
    ("The end.", False),  # too short
    ('"Unbalanced quote.', False),
    ("A (broken) paren) here.", False),
    ("Wait... what happened here?", False),
    ("ALL THESE WORDS SHOUT LOUDLY today.", False),
    ("1 2 3 4 5 6 go.", False),  # mostly numbers
    ("no capital at the start.", False),
    ("It was written by Mr.", False),
])
def test_wide_filter(sentence, ok):
    assert mini_mustc._wide_ok(sentence) is ok


def test_spanish_wide_tidying():
    assert mini_mustc._spanish_wide('"What?"', '" qué ?"') == '"¿Qué?"'
    assert mini_mustc._spanish_wide("(2) Whose bill?", "(2) De quién factura?") == "(2) ¿De quién factura?"
    assert mini_mustc._spanish_wide("He said: (hi) ok.", "dijo : ( hola ) vale .") == "Dijo: (hola) vale."
    assert mini_mustc._spanish_wide('"Shelter," what a name?', '" refugio,"  qué un nombre?') == \
        '¿"Refugio," qué un nombre?'


def test_bad_unseen_size(tmp_path, cli):
    rc, _, err = cli(gen_mini_mustc.main, ["--out", str(tmp_path), *ARGS, "--n_tst_unseen", "-1"])
    assert rc == 2 and "--n_tst_unseen must be >= 0" in err and len(err.strip().splitlines()) == 1
