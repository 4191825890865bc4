"""salign.bin.prep_mustc / salign.data.mustc on tiny MuST-C-layout corpora."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from salign.bin import prep_mustc
from salign.data.mustc import V1_TARGETS, parse_yaml, speaker_id

U1, U2, U3 = ("spk000002_ted_2_0000500_0001750", "spk000002_ted_2_0002000_0003000",
              "spk000010_ted_10_0000250_0001750")


def expected_files(pair_dir: Path, split: str, tgt: str) -> dict:
    wav = pair_dir.resolve() / "data" / split / "wav"
    return {
        "wav.scp": f"ted_10 {wav / 'ted_10.wav'}\nted_2 {wav / 'ted_2.wav'}\n",
        "segments": f"{U1} ted_2 0.500 1.750\n{U2} ted_2 2.000 3.000\n{U3} ted_10 0.250 1.750\n",
        "utt2spk": f"{U1} spk000002\n{U2} spk000002\n{U3} spk000010\n",
        "spk2utt": f"spk000002 {U1} {U2}\nspk000010 {U3}\n",
        "utt2dur": f"{U1} 1.250\n{U2} 1.000\n{U3} 1.500\n",
        "text.en": f"{U1} hello world\n{U2} it's fine really\n{U3} thank you\n",
        "text.en.tc": f"{U1} (Laughter) Hello, world!\n{U2} It's \"fine\" -- really.\n{U3} Thank you. (Applause)\n",
        f"text.{tgt}": f"{U1} Hallo, Welt!\n{U2} Es ist gut.\n{U3} Danke schön.\n",
    }


def assert_datadir(out: Path, pair_dir: Path, split: str, tgt: str) -> None:
    for name, text in expected_files(pair_dir, split, tgt).items():
        assert (out / name).read_text(encoding="utf-8") == text, name
    assert sorted(p.name for p in out.iterdir()) == sorted(list(expected_files(pair_dir, split, tgt)) +
                                                           [".prep_mustc.json"])


@pytest.mark.parametrize("tgt", V1_TARGETS)
def test_prep_every_v1_pair(tgt, mustc, tmp_path, cli):
    root = mustc(tgt, splits=("train", "dev", "tst-COMMON", "tst-HE"))
    out = tmp_path / "data"
    rc, stdout, err = cli(prep_mustc.main, ["--mustc_root", str(root), "--tgt", tgt, "--out", str(out)])
    assert rc == 0, err
    for split in ("train", "dev", "tst-COMMON", "tst-HE"):
        assert_datadir(out / split, root / f"en-{tgt}", split, tgt)
        assert json.loads((out / split / ".prep_mustc.json").read_text())["options"]["version"] == "v1"
    assert "12 segments written in 4 split(s)" in stdout


def test_prep_v2_layout_root_is_pair_dir(mustc, tmp_path, cli):
    pair = tmp_path / "MUSTC_v2.0" / "en-de"
    mustc("de", splits=("train", "tst-COMMON"), pair_dir=pair)
    out = tmp_path / "data"
    rc, _, err = cli(prep_mustc.main, ["--mustc_root", str(pair), "--tgt", "de", "--out", str(out),
                                        "--splits", "train,tst-COMMON"])
    assert rc == 0, err
    assert_datadir(out / "train", pair, "train", "de")
    assert json.loads((out / "train" / ".prep_mustc.json").read_text())["options"]["version"] == "v2"
    assert not (out / "dev").exists()


def test_prep_env_root_and_idempotent(mustc, tmp_path, cli, monkeypatch):
    root = mustc("es", splits=("dev",))
    monkeypatch.setenv("MUSTC_ROOT", str(root))
    argv = ["--tgt", "es", "--splits", "dev", "--out", str(tmp_path / "data")]
    assert cli(prep_mustc.main, argv)[0] == 0
    seg = tmp_path / "data" / "dev" / "segments"
    mtime = seg.stat().st_mtime_ns
    rc, stdout, _ = cli(prep_mustc.main, argv)
    assert rc == 0 and "up to date" in stdout and seg.stat().st_mtime_ns == mtime
    # a changed input is noticed and the split rewritten
    txt = root / "en-es" / "data" / "dev" / "txt" / "dev.es"
    txt.write_text(txt.read_text(encoding="utf-8").replace("Danke schön.", "Gracias."), encoding="utf-8")
    rc, stdout, _ = cli(prep_mustc.main, argv)
    assert rc == 0 and "(same inputs)" not in stdout
    assert (tmp_path / "data" / "dev" / "text.es").read_text(encoding="utf-8").endswith(f"{U3} Gracias.\n")


def test_no_root_given(tmp_path, cli, monkeypatch):
    monkeypatch.delenv("MUSTC_ROOT", raising=False)
    rc, _, err = cli(prep_mustc.main, ["--tgt", "de", "--out", str(tmp_path / "data")])
    assert rc == 2 and "MUSTC_ROOT" in err and len(err.strip().splitlines()) == 1


def _bad(root: Path, tmp_path: Path, cli, *extra: str, tgt: str = "de") -> str:
    out = tmp_path / "out"
    rc, _, err = cli(prep_mustc.main, ["--mustc_root", str(root), "--tgt", tgt, "--out", str(out),
                                        "--splits", "train,dev", *extra])
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR [") and "(fix: " in lines[0], err
    assert not out.exists(), "nothing may be written when validation fails"
    return lines[0]


def test_bad_missing_root(tmp_path, cli):
    assert f"{tmp_path / 'nope'}: MuST-C root dir not found" in _bad(tmp_path / "nope", tmp_path, cli)


def test_bad_missing_pair(mustc, tmp_path, cli):
    root = mustc("es")
    assert "no en-de/data dir" in _bad(root, tmp_path, cli)


def test_bad_missing_split(mustc, tmp_path, cli):
    root = mustc("de", splits=("train",))
    msg = _bad(root, tmp_path, cli)
    assert "split 'dev' not found" in msg and str(root / "en-de" / "data" / "dev") in msg


def test_bad_line_counts(mustc, tmp_path, cli):
    root = mustc("de")
    de = root / "en-de" / "data" / "dev" / "txt" / "dev.de"
    de.write_text("Nur eine Zeile.\n", encoding="utf-8")
    msg = _bad(root, tmp_path, cli)
    assert "line counts differ: dev.yaml 3, dev.en 3, dev.de 1" in msg and "dev/txt" in msg


def test_bad_yaml_missing_key(mustc, tmp_path, cli):
    root = mustc("de")
    y = root / "en-de" / "data" / "train" / "txt" / "train.yaml"
    lines = y.read_text().splitlines()
    lines[1] = lines[1].replace("offset: 2.0, ", "")
    y.write_text("\n".join(lines) + "\n")
    assert f"{y}:2: yaml entry lacks offset" in _bad(root, tmp_path, cli)


def test_bad_yaml_unparsable(mustc, tmp_path, cli):
    root = mustc("de")
    y = root / "en-de" / "data" / "dev" / "txt" / "dev.yaml"
    lines = y.read_text().splitlines()
    lines[2] = "- {duration: 1.5, offset: [0.25, wav: 'x}"
    y.write_text("\n".join(lines) + "\n")
    assert f"{y}:3: unparsable yaml entry" in _bad(root, tmp_path, cli)


def test_bad_segment_outside_wav(mustc, tmp_path, cli, wav_writer):
    root = mustc("de")
    wav_writer(root / "en-de" / "data" / "train" / "wav" / "ted_2.wav", 2.5)  # segment 2 ends at 3.0 s
    msg = _bad(root, tmp_path, cli)
    assert ("train.yaml:2: segment 'ted_2.wav offset 2 duration 1' ends at 3.000 s, after the end of ted_2.wav "
            "(2.500 s)") in msg


def test_bad_unreadable_wav(mustc, tmp_path, cli):
    root = mustc("de")
    wav = root / "en-de" / "data" / "dev" / "wav" / "ted_10.wav"
    wav.write_bytes(b"not a wav at all")
    assert f"{wav}: unreadable wav" in _bad(root, tmp_path, cli)


def test_bad_missing_wav(mustc, tmp_path, cli):
    root = mustc("de")
    wav = root / "en-de" / "data" / "dev" / "wav" / "ted_10.wav"
    wav.unlink()
    assert f"{wav}: wav 'ted_10.wav' not found (referenced at dev.yaml:3)" in _bad(root, tmp_path, cli)


def test_bad_sample_rate(mustc, tmp_path, cli, wav_writer):
    root = mustc("de")
    wav = root / "en-de" / "data" / "train" / "wav" / "ted_2.wav"
    wav_writer(wav, 3.5, sr=8000)
    assert f"{wav}: sample rate 8000 Hz, expected 16000" in _bad(root, tmp_path, cli)


def test_bad_stereo(mustc, tmp_path, cli, wav_writer):
    root = mustc("de")
    wav = root / "en-de" / "data" / "train" / "wav" / "ted_10.wav"
    wav_writer(wav, 2.0, channels=2)
    assert f"{wav}: 2 channels, expected mono" in _bad(root, tmp_path, cli)


def test_bad_empty_transcript(mustc, tmp_path, cli):
    root = mustc("de")
    en = root / "en-de" / "data" / "dev" / "txt" / "dev.en"
    en.write_text("Hello.\n  \nThanks.\n", encoding="utf-8")
    assert f"{en}:2: empty transcript" in _bad(root, tmp_path, cli)


def test_bad_empty_translation(mustc, tmp_path, cli):
    root = mustc("de")
    de = root / "en-de" / "data" / "train" / "txt" / "train.de"
    de.write_text("Hallo.\nGut.\n\n", encoding="utf-8")
    assert f"{de}:3: empty translation" in _bad(root, tmp_path, cli)


def test_bad_duplicate_utt(mustc, tmp_path, cli):
    root = mustc("de")
    txt = root / "en-de" / "data" / "train" / "txt"
    for name in ("train.yaml", "train.en", "train.de"):
        lines = (txt / name).read_text(encoding="utf-8").splitlines()
        (txt / name).write_text("\n".join(lines + lines[:1]) + "\n", encoding="utf-8")
    msg = _bad(root, tmp_path, cli)
    assert f"{txt / 'train.yaml'}:4: duplicate utterance id '{U1}' (same as line 1)" in msg


def test_bad_v1_unknown_pair(mustc, tmp_path, cli):
    root = mustc("ja")
    assert "MuST-C v1 has no en-ja pair" in _bad(root, tmp_path, cli, "--version", "v1", tgt="ja")


def test_later_split_error_writes_nothing(mustc, tmp_path, cli):
    """train is fine, dev is bad: train must not be written either."""
    root = mustc("de")
    (root / "en-de" / "data" / "dev" / "txt" / "dev.en").write_text("a\n", encoding="utf-8")
    _bad(root, tmp_path, cli)


def test_parse_yaml_fast_path_matches_pyyaml(tmp_path):
    text = ("- {duration: 3.565, offset: 0.4847, rw: 12, speaker_id: spk.1, wav: ted_1.wav}\n"
            "- {duration: 2, offset: 15.08, rw: 3, speaker_id: 'spk.1', wav: \"ted_1.wav\"}\n"
            "- {offset: 1e1, duration: .5, speaker_id: spk.7, wav: ted_7.wav, rw: 0}\n")
    p = tmp_path / "x.yaml"
    p.write_text(text)
    got = [e for _, e in parse_yaml(p)]
    want = yaml.safe_load(text)
    assert [(float(g["offset"]), float(g["duration"]), g["speaker_id"], g["wav"]) for g in got] == \
        [(float(w["offset"]), float(w["duration"]), w["speaker_id"], w["wav"]) for w in want]
    assert [ln for ln, _ in parse_yaml(p)] == [1, 2, 3]


def test_parse_yaml_block_style(tmp_path):
    p = tmp_path / "b.yaml"
    p.write_text("- duration: 1.0\n  offset: 0.5\n  speaker_id: spk.1\n  wav: ted_1.wav\n"
                 "- duration: 2.0\n  offset: 3.0\n  speaker_id: spk.1\n  wav: ted_1.wav\n")
    assert [(ln, e["offset"]) for ln, e in parse_yaml(p)] == [(1, 0.5), (5, 3.0)]


def test_speaker_ids_sort_consistently():
    ids = [speaker_id(f"spk.{n}") for n in (1, 2, 10, 100)]
    assert ids == ["spk000001", "spk000002", "spk000010", "spk000100"] == sorted(ids)
    assert speaker_id("J. Doe/1x") == "JDoe1x"


def _write_yaml(path: Path, n: int) -> Path:
    """A MuST-C-style train.yaml of ``n`` one-line flow mappings."""
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"- {{duration: 3.565, offset: {i}.4847, rw: 12, speaker_id: spk.{i // 100}, "
                    f"wav: ted_{i // 100}.wav}}\n")
    return path


def test_large_yaml_takes_the_fast_path_and_scales_linearly(tmp_path, monkeypatch):
    """A MuST-C train.yaml has ~250k lines: its canonical lines never reach PyYAML (the slow path), and the time
    grows linearly with the lines, not quadratically. Seconds are measured by
    benchmarks/bench_prep.py, not asserted here: a loaded machine must not fail the suite, so the scaling is checked
    over 8x the lines (quadratic: 64x the time) with a 24x margin, each size the best of 5."""
    import time

    small, large = _write_yaml(tmp_path / "small.yaml", 5_000), _write_yaml(tmp_path / "large.yaml", 40_000)
    calls = []
    real_load = yaml.load
    monkeypatch.setattr(yaml, "load", lambda *a, **k: calls.append(a) or real_load(*a, **k))
    assert len(parse_yaml(large)) == 40_000 and not calls
    monkeypatch.undo()

    def best(path: Path) -> float:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            parse_yaml(path)
            times.append(time.perf_counter() - t)
        return min(times)

    t_small, t_large = best(small), best(large)
    assert t_large < 24.0 * t_small, (t_small, t_large)
