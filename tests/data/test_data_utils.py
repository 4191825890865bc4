"""salign.bin.data_utils / salign.data.datadir on a data dir written by prep_mustc."""
from __future__ import annotations

from pathlib import Path

import pytest

from salign.bin import data_utils, prep_mustc
from salign.data.datadir import format_time
from salign.data.kaldi import read_table, write_table

U1, U2, U3 = ("spk000002_ted_2_0000500_0001750", "spk000002_ted_2_0002000_0003000",
              "spk000010_ted_10_0000250_0001750")


@pytest.fixture
def data(mustc, tmp_path, cli) -> Path:
    root = mustc("de", splits=("train",))
    rc, _, err = cli(prep_mustc.main, ["--mustc_root", str(root), "--tgt", "de", "--splits", "train",
                                       "--out", str(tmp_path / "data")])
    assert rc == 0, err
    return tmp_path / "data" / "train"


def test_read_write_kv_roundtrip(tmp_path):
    p = tmp_path / "x"
    write_table(p, {"b": "2 two", "a": "1", "B": "", "é": "e"})
    assert p.read_text(encoding="utf-8") == "B\na 1\nb 2 two\né e\n"
    assert read_table(p) == {"B": "", "a": "1", "b": "2 two", "é": "e"}
    assert format_time(1.5) == "1.500" and format_time(0.48475) == "0.48475" and format_time(2) == "2.000"


def test_read_kv_duplicate(tmp_path, cli):
    p = tmp_path / "utt2spk"
    p.write_text("a x\nb y\na z\n")
    from salign.utils.io import InputError

    with pytest.raises(InputError, match=r"utt2spk:3: duplicate key 'a'"):
        read_table(p)


def test_validate_ok(data, cli):
    rc, out, err = cli(data_utils.main, ["validate", "--data", str(data)])
    assert rc == 0 and "OK (3 utterances)" in out, err


def test_subset_first(data, tmp_path, cli):
    out = tmp_path / "sub"
    rc, _, err = cli(data_utils.main, ["subset", "--data", str(data), "--out", str(out), "--first", "2"])
    assert rc == 0, err
    assert list(read_table(out / "utt2spk")) == [U1, U2]
    assert (out / "spk2utt").read_text() == f"spk000002 {U1} {U2}\n"
    assert list(read_table(out / "wav.scp")) == ["ted_2"]
    for name in ("segments", "text.en", "text.en.tc", "text.de", "utt2dur"):
        assert list(read_table(out / name)) == [U1, U2], name
    assert read_table(out / "text.de")[U1] == read_table(data / "text.de")[U1]
    assert cli(data_utils.main, ["validate", "--data", str(out)])[0] == 0


def test_subset_utt_list(data, tmp_path, cli):
    lst = tmp_path / "list"
    lst.write_text(f"{U3}\n{U1} extra fields ignored\n")
    out = tmp_path / "sub"
    assert cli(data_utils.main, ["subset", "--data", str(data), "--out", str(out), "--utt_list", str(lst)])[0] == 0
    assert list(read_table(out / "segments")) == [U1, U3]
    assert list(read_table(out / "wav.scp")) == ["ted_10", "ted_2"]
    assert (out / "spk2utt").read_text() == f"spk000002 {U1}\nspk000010 {U3}\n"


def test_subset_unknown_utt(data, tmp_path, cli):
    lst = tmp_path / "list"
    lst.write_text("nope\n")
    rc, _, err = cli(data_utils.main, ["subset", "--data", str(data), "--out", str(tmp_path / "s"),
                                       "--utt_list", str(lst)])
    assert rc == 2 and "1 utterance ids not in" in err and "'nope'" in err and not (tmp_path / "s").exists()


def test_speed_perturb(data, tmp_path, cli):
    out = tmp_path / "sp"
    rc, stdout, err = cli(data_utils.main, ["speed_perturb", "--data", str(data), "--out", str(out),
                                            "--factors", "0.9,1.0,1.1"])
    assert rc == 0 and "9 utterances" in stdout, err
    utt2spk = read_table(out / "utt2spk")
    assert list(utt2spk) == sorted(utt2spk) and len(utt2spk) == 9
    assert utt2spk[f"sp0.9-{U1}"] == "sp0.9-spk000002" and utt2spk[U1] == "spk000002"
    assert utt2spk[f"sp1.1-{U3}"] == "sp1.1-spk000010"
    seg = read_table(out / "segments")
    assert seg[f"sp0.9-{U1}"] == seg[U1] == seg[f"sp1.1-{U1}"] == "ted_2 0.500 1.750"
    dur = read_table(out / "utt2dur")
    assert dur[U1] == "1.250" and float(dur[f"sp0.9-{U1}"]) == pytest.approx(1.25 / 0.9, abs=1e-6)
    assert float(dur[f"sp1.1-{U3}"]) == pytest.approx(1.5 / 1.1, abs=1e-6)
    speed = read_table(out / "utt2speed")
    assert speed[f"sp0.9-{U2}"] == "0.9" and speed[U2] == "1" and speed[f"sp1.1-{U2}"] == "1.1"
    assert read_table(out / "text.de")[f"sp1.1-{U1}"] == "Hallo, Welt!"
    assert (out / "wav.scp").read_text() == (data / "wav.scp").read_text()
    assert cli(data_utils.main, ["validate", "--data", str(out)])[0] == 0


def test_speed_perturb_bad_factors(data, tmp_path, cli):
    rc, _, err = cli(data_utils.main, ["speed_perturb", "--data", str(data), "--out", str(tmp_path / "o"),
                                       "--factors", "0.9,x"])
    assert rc == 2 and "bad --factors" in err


def _corrupt_and_validate(data: Path, cli) -> str:
    rc, _, err = cli(data_utils.main, ["validate", "--data", str(data)])
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    return err


def test_validate_unsorted(data, cli):
    p = data / "text.de"
    lines = p.read_text(encoding="utf-8").splitlines()
    p.write_text("\n".join([lines[1], lines[0], lines[2]]) + "\n", encoding="utf-8")
    assert f"{p}:2: not sorted" in _corrupt_and_validate(data, cli)


def test_validate_missing_utt(data, cli):
    p = data / "utt2dur"
    p.write_text("".join(p.read_text().splitlines(keepends=True)[:2]))
    assert f"{p}: utterance set differs from utt2spk: lacks '{U3}'" in _corrupt_and_validate(data, cli)


def test_validate_spk2utt_mismatch(data, cli):
    (data / "spk2utt").write_text(f"spk000002 {U1}\nspk000010 {U3}\n")
    assert "spk2utt does not match utt2spk" in _corrupt_and_validate(data, cli)


def test_validate_segment_outside_wav(data, cli, wav_writer):
    wav = Path(read_table(data / "wav.scp")["ted_10"])
    wav_writer(wav, 1.0)
    msg = _corrupt_and_validate(data, cli)
    assert f"{data / 'segments'}:3: segment 'spk000010_ted_10_0000250_0001750' ends at 1.750 s" in msg


def test_validate_utt2dur_mismatch(data, cli):
    p = data / "utt2dur"
    p.write_text(p.read_text().replace("1.000", "1.300"))
    assert f"{p}:2: utt2dur says 1.300" in _corrupt_and_validate(data, cli)


def test_validate_speaker_prefix(data, cli):
    p = data / "utt2spk"
    p.write_text(p.read_text().replace(f"{U3} spk000010", f"{U3} zz"))
    assert "does not start with its speaker id 'zz'" in _corrupt_and_validate(data, cli)
