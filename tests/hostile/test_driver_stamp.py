"""The two stamp checks the driver added (``python -m salign.bin.stamp``): ``check --recorded`` (is what a finished
step consumed unchanged since? stages 12-15 ask it of stages 11 and 12) and ``why`` (what differs between a step's old
and new stamp: stage 3 says why it extracted a set again). A file changed in place, same size, is seen."""
from __future__ import annotations

from pathlib import Path

import pytest

from salign.bin import stamp as stamp_cli
from tests.conftest import cli_error


@pytest.fixture
def step(tmp_path) -> Path:
    """A finished step: its stamp records one input and one option."""
    (tmp_path / "in.txt").write_text("abc\n")
    (tmp_path / "out.txt").write_text("out\n")
    assert stamp_cli.main(["write", "--stamp", str(tmp_path / "s.json"), "--input", str(tmp_path / "in.txt"),
                           "--option", "nbpe=8", "--output", str(tmp_path / "out.txt")]) == 0
    return tmp_path


def test_recorded_check_sees_an_input_changed_in_place_and_a_missing_output(step, capsys):
    stamp = ["check", "--recorded", "--stamp", str(step / "s.json")]
    assert stamp_cli.main(stamp) == 0
    (step / "in.txt").write_text("abd\n")  # same size
    assert stamp_cli.main(stamp) == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"input {step / 'in.txt'} changed"
    (step / "in.txt").write_text("abc\n")
    (step / "out.txt").unlink()
    assert stamp_cli.main(stamp) == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"output {step / 'out.txt'} is missing"
    assert stamp_cli.main(["check", "--recorded", "--stamp", str(step / "none.json")]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "no stamp"


def test_recorded_check_takes_nothing_else(step, capsys):
    err = cli_error(capsys, stamp_cli.main, ["check", "--recorded", "--stamp", str(step / "s.json"), "--option",
                                             "nbpe=8"])
    assert "--recorded takes no --input, --option or --output" in err and "fix:" in err


def test_why_names_the_first_difference(step, capsys):
    old = step / "old.json"
    old.write_bytes((step / "s.json").read_bytes())
    why = ["why", "--stamp", str(step / "s.json"), "--old", str(old)]
    assert stamp_cli.main(why) == 1
    assert capsys.readouterr().out.strip() == "the same inputs and options"
    (step / "in.txt").write_text("xyz\n")
    assert stamp_cli.main(["write", "--stamp", str(step / "s.json"), "--input", str(step / "in.txt"), "--option",
                           "nbpe=8"]) == 0
    assert stamp_cli.main(why) == 0
    assert capsys.readouterr().out.strip() == f"input {step / 'in.txt'} changed"
    assert stamp_cli.main(["write", "--stamp", str(step / "s.json"), "--input", str(step / "in.txt"), "--option",
                           "nbpe=9"]) == 0
    old.write_bytes((step / "s.json").read_bytes().replace(b'"9"', b'"8"'))
    assert stamp_cli.main(why) == 0
    assert capsys.readouterr().out.strip() == "option nbpe changed"
    assert stamp_cli.main(["why", "--stamp", str(step / "s.json"), "--old", str(step / "none.json")]) == 0
    assert capsys.readouterr().out.strip() == "no earlier stamp"
    err = cli_error(capsys, stamp_cli.main, ["why", "--stamp", str(step / "none.json"), "--old", str(old)])
    assert "no stamp to compare" in err
