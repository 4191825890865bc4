"""salign.bin.gen_cs_mini at a tiny size (22 utterances, a few seconds once the Apertium translations are cached under
$SALIGN_CACHE or ~/.cache/salign; a cold cache costs ~30 s once: the mini MuST-C pool, then its chunks)."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from salign.bin import gen_cs_mini
from salign.data import cs_mini, mini_mustc
from salign.data.cs_text import BREAK_BEFORE, split_chunks
from salign.data.datadir import validate_datadir
from salign.data.kaldi import read_table
from salign.llm.moe import frame_labels_from_spans

TOOLS = ("sox", "flite", "espeak-ng", "apertium")
needs_tools = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS) or not mini_mustc.FORTUNES_DIR.is_dir(),
                                 reason="needs sox flite espeak-ng apertium apertium-eng-spa fortunes")
ARGS = ["--n_cs_train", "6", "--n_mono_train", "2", "--n_dev", "1", "--n_test", "3"]
SIZES = {"cs_train": 6, "en_train": 2, "es_train": 2, "cs_dev": 1, "en_dev": 1, "es_dev": 1, "cs_test": 3,
         "en_test": 3, "es_test": 3, "mix_test": 6}
FILES = ("wav.scp", "text", "text.src", "utt2lang", "spans", "utt2spk", "spk2utt", "utt2dur", "chunks.jsonl")
SR = 16000
PMIN, PMAX = 0.1, 0.3  # the default pauses


def _gen(out: Path, *extra: str) -> Path:
    assert gen_cs_mini.main(["--out", str(out), *ARGS, *extra]) == 0
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    if any(shutil.which(t) is None for t in TOOLS) or not mini_mustc.FORTUNES_DIR.is_dir():
        pytest.skip("needs sox flite espeak-ng apertium apertium-eng-spa fortunes")
    return _gen(tmp_path_factory.mktemp("cs") / "c", "--seed", "3", "--nj", "2")


def _chunks(d: Path) -> dict:
    return {r["utt"]: r for r in map(json.loads, (d / "chunks.jsonl").read_text(encoding="utf-8").splitlines())}


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes().replace(str(root).encode(), b"ROOT")
            for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root: Path) -> dict:
    """Every file under ``root`` with its size and modification time: equal after a run means it wrote nothing."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


# ------------------------------------------------------------------------------------------------ text rule
def test_split_chunks_rule():
    s = "In war, you can only be killed once by the enemy and never by a friend."
    chunks = split_chunks(s)
    assert " ".join(chunks) == s
    assert chunks == ["In war,", "you can only be killed once", "by the enemy", "and never", "by a friend."]
    assert all(2 <= len(c.split()) <= 6 for c in chunks)
    assert all(c.split()[0].lower() in BREAK_BEFORE or chunks[i - 1].endswith(",") for i, c in enumerate(chunks) if i)
    assert split_chunks("One two three four five six seven eight nine.", 2, 4) == \
        ["One two three", "four five six", "seven eight nine."]
    assert split_chunks("Go to bed.") == ["Go to bed."]  # a short first piece joins the next one
    assert split_chunks("Go to bed.", min_words=1) == ["Go", "to bed."]


# ------------------------------------------------------------------------------------------------ corpus
@needs_tools
def test_layout_and_labels(corpus):
    meta = json.loads((corpus / "metadata.json").read_text())
    assert meta["langs"] == ["en", "es"] and meta["options"]["seed"] == 3
    for name, n in SIZES.items():
        d = corpus / name
        tables = {f: read_table(d / f) for f in FILES if f not in ("chunks.jsonl", "spk2utt")}
        chunks = _chunks(d)
        utts = set(tables["utt2spk"])
        assert len(utts) == n and all(set(t) == utts for t in tables.values()) and set(chunks) == utts, name
        assert validate_datadir(d) == n
        assert meta["sets"][name]["utterances"] == n
        for utt in utts:
            ch, dur = chunks[utt]["chunks"], float(tables["utt2dur"][utt])
            kind = tables["utt2lang"][utt]
            langs = [c["lang"] for c in ch]
            assert kind == name.split("_")[0] or (name == "mix_test" and kind in ("cs", "es"))
            if kind == "cs":
                assert set(langs) == {"en", "es"} and len(ch) >= 2
            else:
                assert set(langs) == {kind}
            assert tables["spans"][utt] == " ".join(f"{c['lang']} {c['start']} {c['end']}" for c in ch)
            assert tables["text.src"][utt] == " ".join(c["text"] for c in ch)
            target = tables["text"][utt]
            en_words = [c["text"] for c in ch if c["lang"] == "en"]
            assert all(w in target for w in en_words)
            if kind == "en":
                assert " ".join(en_words) == target
            info = soundfile.info(tables["wav.scp"][utt])
            assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
            assert info.frames == round(dur * SR)
            prev = 0.0
            for c in ch:
                start, end = float(c["start"]), float(c["end"])
                assert abs(start * SR - round(start * SR)) < 1e-6 and abs(end * SR - round(end * SR)) < 1e-6
                assert PMIN - 1 / SR <= start - prev <= PMAX + 1 / SR, (utt, start, prev)  # one pause before it
                assert end > start
                prev = end
                assert c["voice"]["engine"] in (("flite", "espeak") if c["lang"] == "en" else ("espeak",))
                assert c["voice"]["voice"].split("+")[0] in (mini_mustc.ESPEAK_VOICES + mini_mustc.FLITE_VOICES
                                                              if c["lang"] == "en" else cs_mini.ES_VOICES)
            assert PMIN - 1 / SR <= dur - prev <= PMAX + 1 / SR  # trailing silence, inside the file
    mix = read_table(corpus / "mix_test" / "text")
    assert mix == {**read_table(corpus / "cs_test" / "text"), **read_table(corpus / "es_test" / "text")}


@needs_tools
def test_span_audio_is_the_chunks_tts(corpus, tmp_path):
    """Every span of the CS training set holds exactly its chunk's TTS samples (re-synthesised), and the samples
    just outside a span (the pauses) are the faint noise floor, not speech."""
    d = corpus / "cs_train"
    wavs = read_table(d / "wav.scp")
    n = 0
    for utt, rec in _chunks(d).items():
        audio, _ = soundfile.read(wavs[utt], dtype="int16")
        for c in rec["chunks"]:
            a, b = round(float(c["start"]) * SR), round(float(c["end"]) * SR)
            tts = cs_mini.to_pcm(cs_mini.synth_chunk(c["text"], c["voice"], tmp_path, 40.0))
            assert np.array_equal(audio[a:b], tts), (utt, c["text"])
            quiet = np.abs(np.concatenate([audio[a - 200:a], audio[b:b + 200]]).astype(int))
            assert quiet.max() < 250 and np.abs(tts.astype(int)).max() > 5000
            n += 1
    assert n >= 12


@needs_tools
def test_spans_feed_frame_labels(corpus, tmp_path):
    d = corpus / "cs_train"
    shift = 0.08
    path = cs_mini.write_lang_frames(d, shift, out=tmp_path / "lang_frames")
    rows = {u: list(map(int, v.split())) for u, v in read_table(path).items()}
    spans, durs = cs_mini.read_spans(d / "spans"), read_table(d / "utt2dur")
    chunks = _chunks(d)
    for utt, row in rows.items():
        assert len(row) == math.ceil(float(durs[utt]) / shift - 1e-9)
        assert row == frame_labels_from_spans(spans[utt], len(row), shift).tolist()
        assert {0, 1} <= set(row)  # both languages present in a CS utterance
        for t, lab in enumerate(row):
            centre = (t + 0.5) * shift
            inside = [c for c in chunks[utt]["chunks"] if float(c["start"]) <= centre < float(c["end"])]
            assert lab == (["en", "es"].index(inside[0]["lang"]) if inside else -1)


@needs_tools
def test_held_out_voices(corpus):
    meta = json.loads((corpus / "metadata.json").read_text())
    train, test = set(meta["voices"]["train"]), set(meta["voices"]["test"])
    assert train and test and not train & test and train | test == set(cs_mini.timbres())
    for name in SIZES:
        used = {c["voice"]["timbre"] for r in _chunks(corpus / name).values() for c in r["chunks"]}
        assert used <= (test if name.endswith("test") else train), name
        assert set(meta["sets"][name]["timbres"]) == used
        assert all(c["voice"]["voice"].endswith(cs_mini._variant(c["voice"]["timbre"]))
                   for r in _chunks(corpus / name).values() for c in r["chunks"] if c["voice"]["engine"] == "espeak")


@needs_tools
def test_deterministic_by_seed(corpus, tmp_path):
    again = _gen(tmp_path / "again", "--seed", "3", "--nj", "1")
    assert _files(again) == _files(corpus)  # every file byte-identical (paths aside), independent of --nj
    other = _gen(tmp_path / "other", "--seed", "4")
    assert (other / "cs_train/text").read_text() != (corpus / "cs_train/text").read_text()
    assert (other / "cs_train/spans").read_text() != (corpus / "cs_train/spans").read_text()


@needs_tools
def test_rerun_writes_nothing_and_options_change_rebuilds(corpus, tmp_path, capsys):
    out = tmp_path / "c"
    shutil.copytree(corpus, out)
    before = _mtimes(out)
    _gen(out, "--seed", "3")
    assert _mtimes(out) == before  # no file rewritten (how long it takes: not asserted, see test_mustc)
    assert "already complete with the same options" in capsys.readouterr().out
    _gen(out, "--seed", "3", "--n_test", "1", "--pause_min", "0.2")
    assert "rebuilding" in capsys.readouterr().out
    assert len(read_table(out / "es_test" / "text")) == 1
    assert not [p for p in tmp_path.iterdir() if p.name != "c"]  # no temp dirs left behind


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("extra, msg", [
    (["--n_test", "0"], "sizes and --nj must be >= 1"),
    (["--nj", "0"], "sizes and --nj must be >= 1"),
    (["--pause_min", "0.4"], "need 0 <= --pause_min (0.4) <= --pause_max (0.3)"),
    (["--min_words", "3", "--max_words", "2"], "need 1 <= --min_words (3) <= --max_words (2)"),
    (["--n_test_variants", "0"], "--n_test_variants must be in 1..5"),
    (["--n_test_flite", "4"], "--n_test_flite must be in 0..3"),
    (["--same_voice", "1.5"], "are probabilities"),
])
def test_bad_options(tmp_path, cli, extra, msg):
    rc, _, err = cli(gen_cs_mini.main, ["--out", str(tmp_path / "c"), *ARGS, *extra])
    assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "c").exists()


def test_missing_tool_names_package(tmp_path, cli, monkeypatch):
    real = shutil.which
    monkeypatch.setattr(mini_mustc.shutil, "which", lambda c: None if c == "espeak-ng" else real(c))
    rc, _, err = cli(gen_cs_mini.main, ["--out", str(tmp_path / "c"), *ARGS])
    assert rc == 2 and "'espeak-ng' not found (fix: sudo apt-get install -y espeak-ng)" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "c").exists()


def test_unwritable_out(tmp_path, cli):
    (tmp_path / "file").write_text("x")
    rc, _, err = cli(gen_cs_mini.main, ["--out", str(tmp_path / "file" / "c"), *ARGS])
    assert rc == 2 and "cannot write the output there" in err and "choose a writable --out" in err
    assert len(err.strip().splitlines()) == 1


def test_refuses_foreign_dir(tmp_path, cli):
    (tmp_path / "c" / "cs_train").mkdir(parents=True)
    rc, _, err = cli(gen_cs_mini.main, ["--out", str(tmp_path / "c"), *ARGS])
    assert rc == 2 and "not built by gen_cs_mini" in err and (tmp_path / "c" / "cs_train").is_dir()
