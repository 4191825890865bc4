"""Stage 4/10 logic (salign/data/dump.py): perturbed copies found by utt2speed, the fbank width read from features."""
from __future__ import annotations

from pathlib import Path

import pytest

from salign.bin import make_fbank
from salign.data.dump import feature_width, filter_split, mt_text, write_stats
from salign.utils.io import InputError
from tests.feats.test_fbank import make_data


def _data_with_texts(root: Path, speeds: dict) -> Path:
    data = make_data(root, n_rec=1, n_seg=4, speeds=speeds)
    utts = [line.split()[0] for line in (data / "segments").read_text().splitlines()]
    (data / "text.en").write_text("".join(f"{u} hello {u}\n" for u in utts))
    (data / "text.es").write_text("".join(f"{u} hola {u}\n" for u in utts))
    return data


@pytest.fixture(scope="module")
def dumped(tmp_path_factory):
    root = tmp_path_factory.mktemp("dump")
    # rec0_01 is a perturbed copy by utt2speed although its id does not say so
    data = _data_with_texts(root, {"rec0_00": 1.0, "rec0_01": 0.9, "rec0_02": 1.0, "rec0_03": 1.0})
    fb = root / "fbank"
    make_fbank.main(["--data", str(data), "--out", str(fb), "--num_mel_bins", "24"])
    return root, data, fb


def test_subset_and_mt_text_skip_perturbed_copies_by_utt2speed(dumped):
    root, data, fb = dumped
    filt = root / "filtered"
    why = filter_split(data, fb, filt, "en", "es", 10, 3000, 200, 200, keep_all=False)
    assert why["kept"] == 4
    assert (filt / "utt2speed").read_text() == "rec0_00 1\nrec0_01 0.9\nrec0_02 1\nrec0_03 1\n"
    sub = root / "subset"
    filter_split(data, fb, sub, "en", "es", 10, 3000, 200, 200, keep_all=False, subset=10)
    assert [ln.split()[0] for ln in (sub / "text.en").read_text().splitlines()] == ["rec0_00", "rec0_02", "rec0_03"]
    assert mt_text(root / "mt", "en", "es", [filt], [], []) == 3
    assert "rec0_01" not in (root / "mt" / "text.en").read_text()


def test_id_that_looks_perturbed_is_kept_without_factor(tmp_path):
    data = make_data(tmp_path, n_rec=1, n_seg=1)
    dump = tmp_path / "d"
    dump.mkdir()
    (dump / "text.en").write_text("sp0.9-rec0_00 hi\n")
    (dump / "text.es").write_text("sp0.9-rec0_00 hola\n")
    assert data.is_dir() and mt_text(tmp_path / "mt", "en", "es", [dump], [], []) == 1


def test_shapes_are_written_once_with_the_width_of_the_features(dumped):
    root, data, fb = dumped
    filt, stats = root / "filtered2", root / "stats"
    filter_split(data, fb, filt, "en", "es", 10, 3000, 200, 200, keep_all=True)
    assert not (fb / "feats_shape").exists() and not (filt / "feats_shape").exists()
    assert feature_width(filt) == 24
    write_stats(filt, stats, "en", "es", None, None)
    frames = (filt / "utt2num_frames").read_text().split()
    assert (stats / "speech_shape").read_text().split("\n")[0] == f"{frames[0]} {frames[1]},24"
    assert (stats / "src_text_shape").read_text().split("\n")[0] == "rec0_00 2"


def test_feature_width_of_an_empty_dump(tmp_path):
    (tmp_path / "feats.scp").write_text("")
    with pytest.raises(InputError, match="no features"):
        feature_width(tmp_path)
