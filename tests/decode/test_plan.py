"""``st_inference --plan`` parsing (salign.decode.plan)."""
from __future__ import annotations

import pytest

from salign.decode.plan import read_plan, split_plan_option
from salign.utils.io import InputError


def test_split_plan_option():
    assert split_plan_option(["--beam_size", "3"]) == (None, ["--beam_size", "3"])
    assert split_plan_option(["--plan", "p", "--ngpu", "0"]) == ("p", ["--ngpu", "0"])
    assert split_plan_option(["--plan=p"]) == ("p", [])
    with pytest.raises(InputError, match="--plan needs a file"):
        split_plan_option(["--ngpu", "0", "--plan"])


def test_read_plan_skips_comments_and_honours_quotes(tmp_path):
    p = tmp_path / "plan"
    p.write_text("# decodes\n\n--task mt --output_dir 'out dir/mt'\n  --task st --output_dir o\n")
    assert read_plan(str(p)) == [["--task", "mt", "--output_dir", "out dir/mt"], ["--task", "st", "--output_dir", "o"]]


@pytest.mark.parametrize("line, msg", [
    ("--task st", ":1: each decode needs its own --output_dir"),
    ("--output_dir o --plan x", ":1: each decode needs its own --output_dir"),
    ("--output_dir 'o", ":1: cannot parse the options"),
])
def test_read_plan_errors_name_the_line(line, msg, tmp_path):
    p = tmp_path / "plan"
    p.write_text(line + "\n")
    with pytest.raises(InputError, match=msg):
        read_plan(str(p))
    with pytest.raises(InputError, match="cannot read the plan"):
        read_plan(str(tmp_path / "missing"))
