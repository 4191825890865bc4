"""The one stamp rule (salign/utils/stamp.py) and its CLI (salign/bin/stamp.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from salign.bin import stamp as stamp_cli
from salign.utils import stamp as stamp_mod
from salign.utils.io import InputError
from salign.utils.stamp import Stamp


@pytest.fixture()
def setup(tmp_path: Path):
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"0123456789")
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "wav.scp").write_text("u1 a.wav\n")
    (d / "sub" / "x").write_text("x\n")
    out = tmp_path / "out.txt"
    out.write_text("done\n")
    return tmp_path, wav, d, out


def test_no_stamp_then_fresh(setup) -> None:
    tmp, wav, d, out = setup
    s = Stamp(tmp / "s.json", [wav, d], {"nj": 2})
    assert s.reason() == "no stamp"
    s.write([out])
    assert Stamp(tmp / "s.json", [wav, d], {"nj": 2}).reason() is None
    rec = json.loads((tmp / "s.json").read_text())
    assert rec["options"] == {"nj": 2} and rec["outputs"] == [str(out)]
    assert set(rec["inputs"][str(d)]["files"]) == {"wav.scp", "sub/x"}


def test_same_name_and_length_change_is_seen(setup) -> None:
    tmp, wav, d, out = setup
    Stamp(tmp / "s.json", [wav], {}).write([out])
    st = wav.stat()
    wav.write_bytes(b"9876543210")  # same length
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns))  # and same mtime
    assert Stamp(tmp / "s.json", [wav], {}).reason() == f"input {wav} changed"


def test_directory_file_change_added_and_removed(setup) -> None:
    tmp, wav, d, out = setup
    Stamp(tmp / "s.json", [d], {}).write()
    (d / "sub" / "x").write_text("y\n")
    assert Stamp(tmp / "s.json", [d], {}).reason() == f"input {d} changed"
    Stamp(tmp / "s.json", [d], {}).write()
    (d / "new").write_text("")
    assert Stamp(tmp / "s.json", [d], {}).reason() == f"input {d} changed"


def test_stamp_inside_input_dir_is_ignored(setup) -> None:
    tmp, wav, d, out = setup
    Stamp(d / ".stamp", [d], {}).write()
    assert Stamp(d / ".stamp", [d], {}).reason() is None


def test_options_inputs_outputs(setup) -> None:
    tmp, wav, d, out = setup
    Stamp(tmp / "s.json", [wav], {"nj": 2, "bins": (80,)}).write([out])
    assert Stamp(tmp / "s.json", [wav], {"nj": 2, "bins": [80]}).reason() is None
    assert Stamp(tmp / "s.json", [wav], {"nj": 3, "bins": [80]}).reason() == "option nj changed"
    assert Stamp(tmp / "s.json", [wav], {"nj": 2}).reason() == "option bins changed"
    assert Stamp(tmp / "s.json", [wav, d], {"nj": 2, "bins": [80]}).reason() == f"input {d} is new"
    assert Stamp(tmp / "s.json", [], {"nj": 2, "bins": [80]}).reason() == f"input {wav} is no longer used"
    out.unlink()
    assert Stamp(tmp / "s.json", [wav], {"nj": 2, "bins": [80]}).reason() == f"output {out} is missing"


def test_write_refuses_missing_output_and_input(setup) -> None:
    tmp, wav, d, out = setup
    with pytest.raises(InputError, match="output is missing"):
        Stamp(tmp / "s.json", [wav]).write([tmp / "nope"])
    assert not (tmp / "s.json").exists()
    Stamp(tmp / "s.json", [wav]).write()
    with pytest.raises(InputError, match="input is missing"):
        Stamp(tmp / "s.json", [tmp / "nope"]).reason()


def test_write_records_inputs_as_first_seen(setup) -> None:
    tmp, wav, d, out = setup
    s = Stamp(tmp / "s.json", [wav])
    assert s.reason() == "no stamp"
    wav.write_bytes(b"changed while the step ran")
    s.write()
    assert Stamp(tmp / "s.json", [wav]).reason() == f"input {wav} changed"


def test_big_file_uses_mtime(setup, monkeypatch) -> None:
    tmp, wav, d, out = setup
    monkeypatch.setattr(stamp_mod, "BIG_FILE", 4)
    ident = stamp_mod.file_identity(wav)
    assert set(ident) == {"size", "mtime_ns"}
    Stamp(tmp / "s.json", [wav]).write()
    os.utime(wav, ns=(1, 1))
    assert Stamp(tmp / "s.json", [wav]).reason() == f"input {wav} changed"


def test_unreadable_or_old_version(setup) -> None:
    tmp, wav, d, out = setup
    (tmp / "s.json").write_text("{not json")
    assert "unreadable" in Stamp(tmp / "s.json", [wav]).reason()
    (tmp / "s.json").write_text(json.dumps({"version": 0}))
    assert "another version" in Stamp(tmp / "s.json", [wav]).reason()


def test_cli_check_and_write(setup, capsys) -> None:
    tmp, wav, d, out = setup
    args = ["--stamp", str(tmp / "s.json"), "--input", str(wav), str(d), "--option", "nj=2", "--option", "x=a=b"]
    assert stamp_cli.main(["check", *args]) == 1
    assert capsys.readouterr().out.strip() == "no stamp"
    assert stamp_cli.main(["write", *args, "--output", str(out)]) == 0
    assert stamp_cli.main(["check", *args, "--what", "fbank of train"]) == 0
    assert capsys.readouterr().out.strip() == "skip: fbank of train is up to date"
    assert json.loads((tmp / "s.json").read_text())["options"] == {"nj": "2", "x": "a=b"}
    assert stamp_cli.main(["check", "--stamp", str(tmp / "s.json"), "--input", str(wav), str(d),
                           "--option", "nj=3", "x=a=b"]) == 1
    assert capsys.readouterr().out.strip() == "option nj changed"


def test_cli_bad_option_and_exit_codes(setup) -> None:
    tmp, wav, d, out = setup
    with pytest.raises(InputError, match="not KEY=VALUE"):
        stamp_cli.main(["check", "--stamp", str(tmp / "s.json"), "--option", "novalue"])
    with pytest.raises(InputError, match="given twice"):
        stamp_cli.parse_options(["a=1", "a=2"])
    proc = subprocess.run([sys.executable, "-m", "salign.bin.stamp", "write", "--stamp", str(tmp / "s.json"),
                           "--output", str(tmp / "nope")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("ERROR [stamp]:")


def test_recorded_stamp_with_a_missing_input_is_stale_not_an_error(setup) -> None:
    """How a later stage checks an earlier one's result: an input gone since (a shard stamp removed by an interrupted
    re-extraction) is a reason, and :meth:`Stamp.stale` is the refusing step's one-line error."""
    tmp, wav, d, out = setup
    Stamp(tmp / "s.json", [wav, d], {"nj": 2}).write([out])
    Stamp.recorded(tmp / "s.json").stale(tmp / "result", "stage 3 (features)")  # current: no error
    wav.unlink()
    assert Stamp.recorded(tmp / "s.json").reason() == f"input {wav} is missing"
    with pytest.raises(InputError) as exc:
        Stamp.recorded(tmp / "s.json").stale(tmp / "result", "stage 3 (features)")
    assert str(exc.value) == (f"{tmp / 'result'}: out of date (input {wav} is missing since it was made) (fix: run "
                              "stage 3 (features) again)")
    with pytest.raises(InputError, match=r"not finished \(no stamp none.json: .*\(fix: run stage 4 again\)"):
        Stamp.recorded(tmp / "none.json").stale(tmp / "result", "stage 4")
    with pytest.raises(InputError, match="input is missing"):  # a step's own check: still an error
        Stamp(tmp / "s.json", [wav]).reason()
