"""The one reader of Kaldi ``key value`` files (salign/data/kaldi.py): one rule for every file and tool."""
from __future__ import annotations

import pytest

from salign.data.kaldi import iter_table, read_table, write_table
from salign.utils.io import InputError


def test_values_blank_lines_crlf_and_bom(tmp_path):
    p = tmp_path / "text"
    p.write_bytes("\ufeffu1  hello   world \r\n\n   \nu2\nu3\tx\ty\t\n".encode("utf-8"))
    assert read_table(p) == {"u1": "hello   world", "u2": "", "u3": "x\ty"}
    assert [line for line, _, _ in iter_table(p)] == [1, 4, 5]


def test_duplicate_names_file_line_and_first_line(tmp_path):
    p = tmp_path / "utt2spk"
    p.write_text("a s1\nb s1\n\na s2\n")
    with pytest.raises(InputError, match=r"utt2spk:4: duplicate key 'a' \(first on line 1\)"):
        read_table(p)


def test_keys_filter_still_checks_duplicates(tmp_path):
    p = tmp_path / "text"
    p.write_text("a 1\nb 2\nc 3\n")
    assert read_table(p, keys={"c", "a"}) == {"a": "1", "c": "3"}
    p.write_text("a 1\nb 2\nb 3\n")
    with pytest.raises(InputError, match="duplicate key 'b'"):
        read_table(p, keys={"a"})


def test_missing_optional_and_not_utf8(tmp_path):
    with pytest.raises(InputError, match=r"nope: file not found \(fix: run stage 3\)"):
        read_table(tmp_path / "nope", fix="run stage 3")
    assert read_table(tmp_path / "nope", required=False) == {}
    (tmp_path / "bad").write_bytes(b"a \xff\xfe\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_table(tmp_path / "bad")
    (tmp_path / "empty").write_text("")
    assert read_table(tmp_path / "empty") == {}


def test_write_sorted_and_round_trip(tmp_path):
    p = tmp_path / "out"
    table = {"b": "2 3", "a": "", "B": "x"}
    write_table(p, table)
    assert p.read_text() == "B x\na\nb 2 3\n"
    assert read_table(p) == table
