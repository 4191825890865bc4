"""The mini MuST-C recipe with --feats_type raw (ESPnet's raw-wave convention): stage 3 dumps 16 kHz flac files and a
wav.scp, stage 4 filters by samples, stage 10 writes shapes in samples and no CMVN, and the model reads the wave
through ESPnet's own fbank frontend (conf/debug/train_st_raw.yaml) in training, decoding and the gap analysis."""
from __future__ import annotations

import pytest
import soundfile as sf
import yaml

from tests.integration.scratch import mini_recipe, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RAW = ["./run.sh", "--debug", "true", "--feats_type", "raw", "--st_config", "conf/debug/train_st_raw.yaml"]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe_raw")
    dst = mini_recipe(root)
    proc = run(dst, RAW, root / "run.log")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return dst, proc.stdout


def test_raw_dumps_shapes_and_no_cmvn(recipe):
    dst, out = recipe
    assert "stage 3: raw for train" in out and not (dst / "dump" / "fbank").exists()
    for dset in ("train", "dev", "tst-COMMON", "tst-HE"):
        raw = dst / "dump" / "raw" / dset
        assert (raw / ".done").is_file()
        scp = dict(line.split() for line in (raw / "wav.scp").read_text().splitlines())
        n = dict(line.split() for line in (raw / "utt2num_samples").read_text().splitlines())
        assert scp.keys() == n.keys()
        utt = sorted(scp)[0]
        info = sf.info(scp[utt])
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, int(n[utt]))
    filtered = dst / "dump" / "raw" / "filtered" / "train"
    assert (filtered / "wav.scp").is_file() and not (filtered / "feats.scp").exists()
    for dset in ("train", "dev"):
        shape = (dst / "dump" / "raw" / "stats" / dset / "speech_shape").read_text().splitlines()
        assert shape and all(len(line.split()) == 2 and line.split()[1].isdigit() for line in shape)
        assert not (dst / "dump" / "raw" / "stats" / dset / "feats_stats.npz").exists()


def test_training_used_the_frontend_on_sound_input(recipe):
    dst, _ = recipe
    conf = yaml.safe_load((dst / "exp" / "st_train_st_raw" / "config.yaml").read_text())
    assert conf["input_size"] is None and conf["frontend"] == "default" and conf["normalize"] == "utterance_mvn"
    assert ["dump/raw/filtered/train/wav.scp", "speech", "sound"] in conf["train_data_path_and_name_and_type"]
    assert conf["fold_length"][0] == 80000


def test_every_stage_ran_on_raw_audio(recipe):
    dst, out = recipe
    for n in (3, 4, 5, 10, 11, 12, 13, 14, 15):
        assert f"stage {n}" in out, n
    exp = dst / "exp" / "st_train_st_raw"
    for task in ("st", "asr"):
        hyp = (exp / f"decode_{task}_tst-COMMON" / "1best_recog" / "text").read_text().splitlines()
        assert len(hyp) == 8
    table = (dst / "exp" / "st_train_st_raw" / "RESULTS.md").read_text()
    assert "| tst-COMMON |" in table and "| train_subset |" in table and "--feats_type raw" in table
    assert (exp / "packed" / "model.zip").is_file() and (exp / "gap" / "gap.json").is_file()


def test_rerun_is_a_noop_and_bad_feats_type_fails_fast(recipe):
    dst, _ = recipe
    proc = run(dst, RAW + ["--stage", "3", "--stop_stage", "12"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stage 3: dump/raw/train is up to date, skipped" in proc.stdout and "stage 11b" not in proc.stdout
    proc = run(dst, ["./run.sh", "--feats_type", "mfcc", "--stage", "3"])
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "unknown --feats_type 'mfcc'" in proc.stderr and "fix:" in proc.stderr
