"""Property-based tests (hypothesis) of the input parsers a corpus goes through first: the MuST-C segment yaml (our
fast path against PyYAML), Kaldi ``key value`` tables (write/read round trip, BOM and CRLF) and the text
normalisation (idempotent, and what it promises to keep and remove)."""
from __future__ import annotations

import string
import unicodedata

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from salign.data.kaldi import read_table, write_table  # noqa: E402
from salign.data.mustc import parse_yaml  # noqa: E402
from salign.text.normalize import normalize_source, normalize_target  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

numbers = st.floats(min_value=0, max_value=1e5, allow_nan=False, allow_infinity=False)
speaker = st.one_of(st.from_regex(r"spk\.[0-9]{1,5}", fullmatch=True),
                    st.text(alphabet=string.ascii_letters + "_-", min_size=1, max_size=12))
wav = st.from_regex(r"ted_[0-9]{1,5}\.wav", fullmatch=True)


def flow_line(entry: dict, style: int) -> str:
    """One MuST-C yaml line in one of the layouts seen in the wild (key order, spacing, number formats)."""
    fmt = ("{:.2f}", "{:.6f}", "{:.1f}")[style]  # MuST-C writes decimals (YAML 1.1 reads "5e-3" as a string)
    d, o = fmt.format(entry["duration"]), fmt.format(entry["offset"])
    items = [f"duration: {d}", f"offset: {o}", "rW: 0", "uW: 0", f"speaker_id: {entry['speaker_id']}",
             f"wav: {entry['wav']}"]
    if style == 1:
        items = items[::-1]
    elif style == 2:
        items = [i.replace(": ", ":  ") for i in items]
    return "- {" + ", ".join(items) + "}"


@SETTINGS
@given(st.lists(st.fixed_dictionaries({"duration": numbers, "offset": numbers, "speaker_id": speaker, "wav": wav}),
                min_size=1, max_size=8),
       st.integers(min_value=0, max_value=2), st.booleans(), st.booleans())
def test_segment_yaml_parses_as_pyyaml_does(tmp_path, entries, style, bom, blank_lines):
    lines = [flow_line(e, style) for e in entries]
    text = ("\n\n" if blank_lines else "\n").join(lines) + "\n"
    path = tmp_path / "seg.yaml"
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    ours = parse_yaml(path)
    reference = yaml.safe_load(text)  # PyYAML on the same text: the numbers and file names must agree
    assert len(ours) == len(reference) == len(entries)
    fmt = ("{:.2f}", "{:.6f}", "{:.1f}")[style]
    for (lineno, got), ref, src, line in zip(ours, reference, entries, lines):
        assert text.splitlines()[lineno - 1] == line  # each entry's line number points at its own line
        for key in ("duration", "offset"):
            assert float(got[key]) == float(ref[key]) == float(fmt.format(src[key])), key
        assert got["wav"] == ref["wav"] == src["wav"]
        assert str(got["speaker_id"]) == src["speaker_id"]  # kept as written (PyYAML turns "TRUE" into True)


keys = st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=16)
values = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\ufeff"),
                 min_size=0, max_size=30).map(lambda v: " ".join(v.split())).filter(bool)


@SETTINGS
@given(st.dictionaries(keys, values, min_size=1, max_size=10), st.booleans(), st.booleans())
def test_kaldi_tables_round_trip_with_bom_and_crlf(tmp_path, table, bom, crlf):
    path = tmp_path / "table"
    write_table(path, table)
    assert read_table(path) == table
    raw = path.read_text(encoding="utf-8")
    if crlf:
        raw = raw.replace("\n", "\r\n")
    path.write_bytes((("\ufeff" if bom else "") + raw).encode("utf-8"))
    assert read_table(path) == table


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)


@SETTINGS
@given(texts)
def test_source_normalisation_is_idempotent_and_keeps_only_words(text):
    once = normalize_source(text)
    assert normalize_source(once) == once
    assert once == once.strip() and "  " not in once and "\n" not in once
    assert once == once.lower()
    for word in once.split():
        assert word[0] != "'" and word[-1] != "'", word  # apostrophes only inside words
        assert all(ch == "'" or unicodedata.category(ch)[0] in "LMN" for ch in word), word


@SETTINGS
@given(texts)
def test_target_normalisation_changes_only_whitespace_boms_and_composition(text):
    out = normalize_target(text)
    assert normalize_target(out) == out
    assert out == unicodedata.normalize("NFC", out)
    assert out.split() == unicodedata.normalize("NFC", text.replace("\ufeff", "")).split()
    assert normalize_target(unicodedata.normalize("NFD", text)) == out  # decomposed accents: the same text


@pytest.mark.parametrize("text,expected", [("(Applause) Don't -- it's OK?", "don't it's ok"),
                                            ("[inaudible] Ça va, «Émile»!", "ça va émile")])
def test_known_normalisations(text, expected):
    assert normalize_source(text) == expected
