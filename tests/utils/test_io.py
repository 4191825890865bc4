"""salign/utils/io.py: atomic outputs (nothing left behind on failure, the old output intact) and run_cli's one-line
errors with exit status 2."""
from __future__ import annotations

import os
import stat
import sys

import pytest

from salign.utils.io import InputError, atomic_dir, atomic_write, run_cli


def listing(d):
    return sorted(p.name for p in d.iterdir())


def test_atomic_write_replaces_only_when_the_block_finishes(tmp_path):
    out = tmp_path / "sub" / "out.txt"
    with atomic_write(out) as f:
        f.write("one\n")
        assert not out.exists()  # still under a temporary name
    assert out.read_text() == "one\n" and listing(out.parent) == ["out.txt"]
    with pytest.raises(RuntimeError):
        with atomic_write(out) as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert out.read_text() == "one\n" and listing(out.parent) == ["out.txt"]  # old output kept, no temp file


def test_atomic_write_binary_and_permissions(tmp_path):
    out = tmp_path / "b.bin"
    with atomic_write(out, "wb") as f:
        f.write(b"\x00\x01")
    assert out.read_bytes() == b"\x00\x01"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_atomic_dir_replaces_a_whole_directory_or_nothing(tmp_path):
    out = tmp_path / "dump"
    with atomic_dir(out) as d:
        (d / "a").write_text("1")
        assert not out.exists()
    assert listing(out) == ["a"]
    with atomic_dir(out) as d:
        (d / "b").write_text("2")
    assert listing(out) == ["b"] and listing(tmp_path) == ["dump"]  # old dir gone, no .old/.tmp left
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as d:
            (d / "c").write_text("3")
            raise KeyboardInterrupt
    assert listing(out) == ["b"] and listing(tmp_path) == ["dump"]


def test_input_error_names_file_line_and_fix():
    assert str(InputError("bad value", "data/x/text", 3, fix="remove it")) == \
        "data/x/text:3: bad value (fix: remove it)"
    assert str(InputError("no such dir", "exp")) == "exp: no such dir"
    assert str(InputError("nothing to do")) == "nothing to do"


def test_run_cli_turns_input_error_into_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/x/salign/bin/mytool.py"])

    def bad(argv):
        raise InputError("broken line", "f.txt", 7, fix="delete it")

    with pytest.raises(SystemExit) as exc:
        run_cli(bad, [])
    assert exc.value.code == 2
    assert capsys.readouterr().err == "ERROR [mytool]: f.txt:7: broken line (fix: delete it)\n"


@pytest.mark.parametrize("rc, code", [(None, 0), (0, 0), (1, 1)])
def test_run_cli_exits_with_mains_status(rc, code, capsys):
    seen = []

    def main(argv):
        seen.append(argv)
        return rc

    with pytest.raises(SystemExit) as exc:
        run_cli(main, ["--a"])
    assert exc.value.code == code and seen == [["--a"]] and capsys.readouterr().err == ""


def test_run_cli_lets_other_errors_through():
    def main(argv):
        raise ValueError("a bug, not bad input")

    with pytest.raises(ValueError, match="a bug"):
        run_cli(main, [])
