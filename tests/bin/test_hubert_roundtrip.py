"""Raw-wave round trip with ``--encoder hubert``: st_train on 16 kHz wav files (ESPnet ``sound`` data) from a tiny
HuBERT checkpoint, then st_inference as ST and ASR, through the real CLIs."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import pytest

from tests.conftest import REPO, run_tool

pytestmark = pytest.mark.slow
CONFIG = REPO / "tests" / "conf" / "train_st_hubert_test.yaml"


@pytest.fixture(scope="module")
def wav_data(tmp_path_factory) -> Path:
    from salign.testing.tiny_ssl import make_tiny_wav_data, save_fairseq, tiny_hubert

    root = tmp_path_factory.mktemp("wav")
    make_tiny_wav_data(root, n_utts=8)
    save_fairseq(tiny_hubert(), root / "downloads" / "hubert_tiny.pt")
    return root


def hubert_train_args(root: Path, out: Path, checkpoint: str) -> List[str]:
    data = []
    for split in ("train", "valid"):
        data += [f"--{split}_data_path_and_name_and_type", f"{root}/wav.scp,speech,sound",
                 f"--{split}_data_path_and_name_and_type", f"{root}/text,text,text",
                 f"--{split}_data_path_and_name_and_type", f"{root}/src_text,src_text,text",
                 f"--{split}_shape_file", f"{root}/speech_shape"]
    return ["--config", CONFIG, "--output_dir", out, "--token_type", "word", "--src_token_type", "word",
            "--token_list", root / "tokens.txt", "--src_token_list", root / "tokens.txt", "--input_size", "1",
            "--encoder_conf", f"checkpoint={checkpoint}", "--fold_length", "80000", "--ngpu", "0", "--seed", "0",
            *data]


@pytest.fixture(scope="module")
def st_dir(wav_data) -> Path:
    # relative checkpoint path, as in the recipes: resolved from the working directory of training and decoding
    run_tool("salign.bin.st_train", hubert_train_args(wav_data, wav_data / "exp", "downloads/hubert_tiny.pt"),
             wav_data, "train.log")
    # decoding must not need the pre-trained checkpoint: config.yaml holds the architecture, the model file the weights
    (wav_data / "downloads" / "hubert_tiny.pt").rename(wav_data / "downloads" / "moved.pt")
    return wav_data / "exp"


def test_saved_config_rebuilds_without_the_pretrained_checkpoint(st_dir):
    import yaml

    conf = yaml.safe_load((st_dir / "config.yaml").read_text())["encoder_conf"]
    assert "checkpoint" not in conf and conf["arch"]["encoder_num_layers"] >= 1


def test_training_on_raw_wave_logs_every_loss(st_dir):
    log = (st_dir.parent / "train.log").read_text()
    assert "2epoch results" in log
    for key in ("loss_st", "loss_asr", "loss_mt", "acc_st"):
        assert key in log, key
    assert (st_dir / "valid.acc.ave.pth").exists()


def decode(wav_data: Path, st_dir: Path, task: str, batched: str) -> Dict[str, str]:
    out = wav_data / f"decode_{task}_{batched}"
    run_tool("salign.bin.st_inference", ["--task", task, "--st_train_config", st_dir / "config.yaml",
                                         "--st_model_file", st_dir / "valid.acc.ave.pth", "--beam_size", "2",
                                         "--data_path_and_name_and_type", f"{wav_data}/wav.scp,speech,sound",
                                         "--output_dir", out, "--ngpu", "0", "--batched", batched],
             wav_data, f"{out.name}.log")
    lines = (out / "1best_recog" / "token_int").read_text().splitlines()
    return dict((line + " ").split(" ", 1) for line in lines)


@pytest.mark.parametrize("task", ["st", "asr"])
def test_decoding_raw_wave_batched_as_one_by_one(task, wav_data, st_dir):
    """Every utterance is decoded, and padded batches give the hypotheses of ESPnet's one-at-a-time path."""
    keys = {line.split()[0] for line in (wav_data / "text").read_text().splitlines()}
    batched = decode(wav_data, st_dir, task, "true")
    assert set(batched) == keys
    assert decode(wav_data, st_dir, task, "false") == batched


def test_missing_checkpoint_stops_training_with_one_line(wav_data, tmp_path):
    proc = run_tool("salign.bin.st_train", hubert_train_args(wav_data, tmp_path / "exp", "downloads/nope.pt"),
                    wav_data, "missing.log", check=False)
    errors = [line for line in proc.stdout.splitlines() if line.startswith("ERROR")]
    assert proc.returncode == 2 and errors == [
        "ERROR [st_train]: downloads/nope.pt: no such SSL checkpoint (file or directory) (fix: download it (e.g. "
        "hubert_base_ls960.pt) or set encoder_conf.checkpoint)"], proc.stdout[-2000:]
