"""A real st_train -> st_inference round trip through ESPnet's CLIs on a tiny synthetic data set.

MT pre-training on text alone, S-Align multi-task training initialised from it, then decoding the one model as ST,
MT and ASR, and ESPnet's own ``Speech2Text`` API loading it.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Dict, List

import pytest

from tests.conftest import REPO, run_tool, train_args

pytestmark = pytest.mark.slow
MT_CONFIG = REPO / "tests" / "conf" / "train_mt_test.yaml"


def epoch_stats(log: str, split: str = "train") -> List[Dict[str, float]]:
    """Per-epoch statistics that ESPnet's trainer printed."""
    out = []
    for line in log.splitlines():
        if "epoch results" in line:
            part = line.split(f"[{split}]", 1)[1].split("[", 1)[0]
            out.append({k: float(v) for k, v in re.findall(r"(\w+)=([-0-9.e+]+)", part)})
    return out


@pytest.fixture(scope="session")
def mt_dir(tiny_data, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("mt")
    run_tool("salign.bin.st_train", train_args(tiny_data, work / "exp", speech=False, config=MT_CONFIG), work, "log")
    return work / "exp"


@pytest.fixture(scope="session")
def st_dir(tiny_data, mt_dir, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("st")
    args = train_args(tiny_data, work / "exp") + ["--init_from_mt", mt_dir / "valid.acc.best.pth", "--max_epoch", "2"]
    run_tool("salign.bin.st_train", args, work, "log")
    return work / "exp"


def test_mt_pretraining_on_text_alone_learns(mt_dir):
    stats = epoch_stats((mt_dir.parent / "log").read_text())
    assert len(stats) == 20 and "loss_st" not in stats[0] and "loss_asr" not in stats[0]
    assert stats[-1]["loss_mt"] < 0.5 * stats[0]["loss_mt"]
    assert stats[-1]["acc_mt"] > 0.7 > 0.2 > stats[0]["acc_mt"]


def test_st_training_starts_from_the_mt_checkpoint(st_dir):
    log = (st_dir.parent / "log").read_text()
    assert re.search(r"text_encoder\s+initialised from MT", log)
    assert re.search(r"encoder\s+not initialised", log)
    first = epoch_stats(log)[0]
    assert first["acc_mt"] > 0.6  # a fresh model starts near 0.02
    for key in ("loss_st", "loss_mt", "loss_asr", "acc_st", "acc_mt", "disc_acc", "loss_adv_d", "loss_adv_g"):
        assert key in first, key


def read_kaldi(path: Path) -> Dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        k, _, v = line.partition(" ")
        out[k] = v
    return out


@pytest.mark.parametrize("task", ["st", "mt", "asr"])
def test_decode_each_task_with_espnet_outputs(task, tiny_data, st_dir, mt_dir, tmp_path):
    model_dir = mt_dir if task == "mt" else st_dir
    model = model_dir / ("valid.acc.best.pth" if task == "mt" else "valid.acc.ave.pth")
    data = f"{tiny_data}/src_text,src_text,text" if task == "mt" else f"{tiny_data}/feats.scp,speech,kaldi_ark"
    run_tool("salign.bin.st_inference", ["--task", task, "--st_train_config", model_dir / "config.yaml",
                                         "--st_model_file", model, "--data_path_and_name_and_type", data,
                                         "--output_dir", tmp_path / "out", "--beam_size", "3", "--ngpu", "0"],
             tmp_path, "log")
    best = tmp_path / "out" / "1best_recog"
    keys = set(read_kaldi(tiny_data / "text"))
    for name in ("text", "token", "token_int", "score"):
        assert set(read_kaldi(best / name)) == keys, name
    if task == "mt":
        hyp, ref = read_kaldi(best / "text"), read_kaldi(tiny_data / "text")
        ks = sorted(keys)
        exact = sum(hyp[k] == ref[k] for k in ks)
        assert exact >= len(ks) // 2, (exact, hyp)  # the MT-pretrained model translates its training data


def test_espnet_speech2text_loads_the_model_by_one_liner(st_dir, tiny_data):
    import kaldiio

    import salign.tasks.st as t

    t.register_with_espnet()
    from espnet2.bin.st_inference import Speech2Text

    s2t = Speech2Text(st_train_config=str(st_dir / "config.yaml"), st_model_file=str(st_dir / "valid.acc.ave.pth"),
                      beam_size=2, maxlenratio=0.5)
    feats = next(iter(kaldiio.load_scp(str(tiny_data / "feats.scp")).values()))
    (text, tokens, ids, hyp), *_ = s2t(feats)
    assert type(s2t.st_model).__name__ == "SAlignSTModel"
    assert isinstance(ids, list) and len(tokens) == len(ids)


@pytest.mark.parametrize("batched", ["true", "false"])
def test_mt_decoding_honours_key_file(batched, tiny_data, mt_dir, tmp_path):
    keys = sorted(read_kaldi(tiny_data / "text"))[:3]
    (tmp_path / "keys").write_text("".join(f"{k}\n" for k in keys))
    run_tool("salign.bin.st_inference", ["--task", "mt", "--st_train_config", mt_dir / "config.yaml",
                                         "--st_model_file", mt_dir / "valid.acc.best.pth", "--batched", batched,
                                         "--data_path_and_name_and_type", f"{tiny_data}/src_text,src_text,text",
                                         "--key_file", tmp_path / "keys", "--output_dir", tmp_path / "out",
                                         "--beam_size", "2", "--ngpu", "0"], tmp_path, "log")
    assert sorted(read_kaldi(tmp_path / "out" / "1best_recog" / "text")) == keys


def test_plan_runs_several_decodes_in_one_process_with_the_same_outputs(tiny_data, st_dir, tmp_path):
    """``--plan``: ST, MT (own length ratio) and ASR on key shares, in one process = the separate decodes."""
    keys = sorted(read_kaldi(tiny_data / "text"))
    (tmp_path / "keys").write_text("".join(f"{k}\n" for k in keys[:4]))
    speech, text = f"{tiny_data}/feats.scp,speech,kaldi_ark", f"{tiny_data}/src_text,src_text,text"
    common = ["--st_train_config", st_dir / "config.yaml", "--st_model_file", st_dir / "valid.acc.ave.pth",
              "--beam_size", "3", "--ngpu", "0"]
    decodes = {"st": ["--task", "st", "--data_path_and_name_and_type", speech],
               "mt": ["--task", "mt", "--data_path_and_name_and_type", text, "--maxlenratio", "2.0"],
               "asr": ["--task", "asr", "--data_path_and_name_and_type", speech, "--key_file", str(tmp_path / "keys")]}
    plan = tmp_path / "plan"
    plan.write_text("# one decode per line\n" + "".join(
        shlex.join(opts + ["--output_dir", str(tmp_path / "planned" / name)]) + "\n" for name, opts in decodes.items()))
    run_tool("salign.bin.st_inference", common + ["--plan", plan], tmp_path, "plan.log")
    for name, opts in decodes.items():
        run_tool("salign.bin.st_inference", common + opts + ["--output_dir", tmp_path / name], tmp_path, f"{name}.log")
        for f in ("text", "token_int", "score"):
            alone = read_kaldi(tmp_path / name / "1best_recog" / f)
            assert read_kaldi(tmp_path / "planned" / name / "1best_recog" / f) == alone, (name, f)
    assert len(read_kaldi(tmp_path / "planned" / "asr" / "1best_recog" / "token_int")) == 4


def test_plan_errors_name_the_line(tiny_data, st_dir, tmp_path):
    (tmp_path / "plan").write_text("--task st --data_path_and_name_and_type x,speech,kaldi_ark\n")
    proc = run_tool("salign.bin.st_inference", ["--st_train_config", st_dir / "config.yaml", "--st_model_file",
                                                st_dir / "valid.acc.ave.pth", "--plan", tmp_path / "plan"],
                    tmp_path, "log", check=False)
    assert proc.returncode != 0
    assert f"{tmp_path / 'plan'}:1: each decode needs its own --output_dir" in (tmp_path / "log").read_text()
