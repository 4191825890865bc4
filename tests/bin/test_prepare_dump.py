"""Stage 4/10 on both dump kinds: raw audio filtered by samples with sample-count shapes and no CMVN; fbank shapes
with the dump's own feature width."""
from __future__ import annotations

from pathlib import Path

from salign.bin import make_fbank, make_raw, prepare_dump
from tests.feats.test_fbank import make_data


def _table(path: Path) -> dict:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


def _with_texts(root: Path, **kw) -> Path:
    data = make_data(root, **kw)
    utts = [line.split()[0] for line in (data / "segments").read_text().splitlines()]
    (data / "text.en").write_text("".join(f"{u} hello world\n" for u in utts))
    (data / "text.es").write_text("".join(f"{u} hola mundo\n" for u in utts))
    return data


def test_raw_dump_is_filtered_by_samples_and_shaped_in_samples(tmp_path):
    # 2.5 s segments = 40000 samples; speed 0.9 makes 44445, speed 1.1 makes 36364
    data = _with_texts(tmp_path, n_rec=1, n_seg=4, speeds={"rec0_00": 0.9, "rec0_01": 1.1})
    raw, filt, stats = tmp_path / "raw", tmp_path / "filtered", tmp_path / "stats"
    make_raw.main(["--data", str(data), "--out", str(raw), "--nj", "2"])
    prepare_dump.main(["filter", "--data", str(data), "--feats", str(raw), "--out", str(filt), "--tgt_lang", "es",
                       "--min_samples", "38000", "--max_samples", "44000",
                       "--min_frames", "100000"])  # frame limits do not apply to raw audio
    assert sorted(p.name for p in filt.iterdir()) == [".stamp", "filter.log", "text.en", "text.es", "utt2num_samples",
                                                        "wav.scp"]
    assert list(_table(filt / "wav.scp")) == ["rec0_02", "rec0_03"]
    assert _table(filt / "wav.scp")["rec0_02"] == _table(raw / "wav.scp")["rec0_02"]
    assert (filt / "utt2num_samples").read_text() == "rec0_02 40000\nrec0_03 40000\n"
    log = (filt / "filter.log").read_text()
    assert "too few samples: 1" in log and "too many samples: 1" in log and "kept: 2" in log
    prepare_dump.main(["stats", "--dump", str(filt), "--out", str(stats), "--tgt_lang", "es"])
    assert (stats / "speech_shape").read_text() == "rec0_02 40000\nrec0_03 40000\n"  # ESPnet's raw shape format
    assert not (stats / "feats_stats.npz").exists()
    assert (stats / "text_shape").read_text() == "rec0_02 2\nrec0_03 2\n"


def test_raw_test_sets_keep_everything(tmp_path):
    data = _with_texts(tmp_path, n_rec=1, n_seg=2)
    raw, filt = tmp_path / "raw", tmp_path / "filtered"
    make_raw.main(["--data", str(data), "--out", str(raw)])
    prepare_dump.main(["filter", "--keep_all", "--data", str(data), "--feats", str(raw), "--out", str(filt),
                       "--tgt_lang", "es", "--min_samples", "10000000"])
    assert list(_table(filt / "wav.scp")) == ["rec0_00", "rec0_01"]


def test_fbank_shapes_carry_the_dump_feature_width(tmp_path):
    data = _with_texts(tmp_path, n_rec=1, n_seg=2)
    fb, filt, stats = tmp_path / "fbank", tmp_path / "filtered", tmp_path / "stats"
    make_fbank.main(["--data", str(data), "--out", str(fb), "--num_mel_bins", "40"])
    prepare_dump.main(["filter", "--data", str(data), "--feats", str(fb), "--out", str(filt), "--tgt_lang", "es"])
    assert sorted(p.name for p in filt.iterdir()) == [".stamp", "feats.scp", "filter.log", "text.en", "text.es",
                                                        "utt2num_frames"]  # shapes: stage 10 only
    assert "too few frames" not in (filt / "filter.log").read_text()
    prepare_dump.main(["stats", "--dump", str(filt), "--out", str(stats), "--tgt_lang", "es"])
    assert (stats / "speech_shape").read_text() == "rec0_00 248,40\nrec0_01 248,40\n"
    assert not (stats / "feats_stats.npz").exists()  # training reads stage 3's cmvn.npz: no copy
