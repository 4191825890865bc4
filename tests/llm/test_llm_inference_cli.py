"""``python -m salign.bin.st_inference`` on speech-LLM models trained one epoch by ``python -m salign.bin.llm_train``
on the tiny data: ST, MT and ASR output files, batched = one at a time, ``--plan``, one-line errors."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List

import pytest

from tests.conftest import run_tool
from tests.llm.test_llm_train import HF_CONFIG, TINY_CONFIG, llm_args

pytestmark = pytest.mark.slow
FILES = ("text", "token", "token_int", "score")


def train_one_epoch(data: Path, work: Path, config: Path, extra: List[str] = (), tokens: bool = True) -> Path:
    exp = work / "exp"
    run_tool("salign.bin.llm_train", llm_args(data, exp, config, tokens=tokens) + ["--max_epoch", "1", *extra],
             work, "train.log")
    return exp


@pytest.fixture(scope="module")
def tiny_exp(tiny_data, tmp_path_factory) -> Path:
    return train_one_epoch(tiny_data, tmp_path_factory.mktemp("llm_dec_tiny"), TINY_CONFIG)


@pytest.fixture(scope="module")
def hf_exp(tiny_data, tiny_qwen2, tmp_path_factory) -> Path:
    return train_one_epoch(tiny_data, tmp_path_factory.mktemp("llm_dec_hf"), HF_CONFIG,
                           ["--lm_conf", f"path={tiny_qwen2}"], tokens=False)


def data_of(task: str, data: Path) -> str:
    return f"{data}/src_text,src_text,text" if task == "mt" else f"{data}/feats.scp,speech,kaldi_ark"


def decode_args(exp: Path, data: Path, task: str, *extra) -> List:
    return ["--task", task, "--st_train_config", exp / "config.yaml", "--st_model_file", exp / "valid.acc.ave.pth",
            "--data_path_and_name_and_type", data_of(task, data), "--beam_size", "3", "--maxlenratio", "-6",
            "--ngpu", "0", *extra]


def read(out: Path, n: int = 1) -> Dict[str, Dict[str, str]]:
    d = out / f"{n}best_recog"
    return {name: dict(line.split(maxsplit=1) if " " in line else (line, "")
                       for line in (d / name).read_text().splitlines()) for name in FILES}


def keys_of(data: Path) -> List[str]:
    return sorted(line.split()[0] for line in (data / "feats.scp").read_text().splitlines())


@pytest.mark.parametrize("task", ["st", "mt", "asr"])
def test_tiny_lm_decodes_every_task(task, tiny_exp, tiny_data, tmp_path):
    out = tmp_path / "out"
    run_tool("salign.bin.st_inference", decode_args(tiny_exp, tiny_data, task, "--nbest", "2", "--output_dir", out,
                                                    "--batch_size", "5"), tmp_path, "log")
    for n in (1, 2):
        res = read(out, n)
        assert sorted(res["token_int"]) == keys_of(tiny_data)
        tokens = [t.strip() for t in (tiny_data / "tokens.txt").read_text().splitlines()]
        for key, ids in res["token_int"].items():
            ids = [int(i) for i in ids.split()]
            assert len(ids) <= 6 and all(0 < i < len(tokens) - 1 for i in ids)  # no blank, no <sos/eos>
            assert res["token"][key].split() == [tokens[i] for i in ids]
            assert res["text"][key].split() == res["token"][key].split()  # word tokens
    s1, s2 = read(out, 1)["score"], read(out, 2)["score"]
    assert all(float(s1[k]) >= float(s2[k]) for k in s1)


def test_tiny_lm_batched_equals_one_at_a_time_and_plan(tiny_exp, tiny_data, tmp_path):
    base = decode_args(tiny_exp, tiny_data, "st", "--penalty", "0.3")
    run_tool("salign.bin.st_inference", base + ["--output_dir", tmp_path / "batched"], tmp_path, "b.log")
    run_tool("salign.bin.st_inference", base + ["--output_dir", tmp_path / "single", "--batched", "false"],
             tmp_path, "s.log")
    b, s = read(tmp_path / "batched"), read(tmp_path / "single")
    assert b["token_int"] == s["token_int"] and b["text"] == s["text"]
    assert all(abs(float(b["score"][k]) - float(s["score"][k])) < 1e-4 for k in b["score"])

    plan = tmp_path / "plan"
    plan.write_text(f"--task st --output_dir {tmp_path / 'p_st'} --penalty 0.3\n"
                    f"--task mt --data_path_and_name_and_type {data_of('mt', tiny_data)} "
                    f"--output_dir {tmp_path / 'p_mt'}\n")
    common = [x for x in base if x != "--penalty" and x != "0.3"]
    run_tool("salign.bin.st_inference", common + ["--plan", plan], tmp_path, "plan.log")
    assert read(tmp_path / "p_st")["token_int"] == b["token_int"]
    assert sorted(read(tmp_path / "p_mt")["token_int"]) == keys_of(tiny_data)


def test_ctc_weight_is_a_one_line_error(tiny_exp, tiny_data, tmp_path):
    proc = run_tool("salign.bin.st_inference", decode_args(tiny_exp, tiny_data, "st", "--ctc_weight", "0.3",
                                                           "--output_dir", tmp_path / "o"), tmp_path, "log",
                    check=False)
    assert proc.returncode != 0
    assert "speech-LLM's CTC head is over the transcript" in proc.stdout.strip().splitlines()[-1]


def test_hf_lm_decodes_with_its_tokenizer(hf_exp, tiny_data, tiny_qwen2, tmp_path):
    from salign.llm.hf_lm import load_tokenizer

    tok = load_tokenizer(str(tiny_qwen2))
    for task in ("st", "mt"):
        out = tmp_path / task
        run_tool("salign.bin.st_inference", decode_args(hf_exp, tiny_data, task, "--output_dir", out),
                 tmp_path, f"{task}.log")
        res = read(out)
        assert sorted(res["token_int"]) == keys_of(tiny_data)
        for key, ids in res["token_int"].items():
            ids = [int(i) for i in ids.split()]
            assert tok.eos_token_id not in ids
            assert res["text"][key] == tok.decode(ids, skip_special_tokens=True).strip()
            assert res["token"][key].split() == tok.convert_ids_to_tokens(ids)


def test_tiny_lm_through_the_decoding_stage(tiny_exp, tiny_data, tmp_path):
    """Stage 12 (``--decode_sets ... --job J`` in 2 jobs, then ``--merge``) writes the files of one decode."""
    dump = tmp_path / "dump" / "tst"
    dump.mkdir(parents=True)
    shutil.copy(tiny_data / "feats.scp", dump / "feats.scp")
    shutil.copy(tiny_data / "src_text", dump / "text.en")
    exp = tmp_path / "exp"
    exp.mkdir()
    for name in ("config.yaml", "valid.acc.ave.pth"):
        shutil.copy(tiny_exp / name, exp / name)
    common = ["--st_train_config", exp / "config.yaml", "--st_model_file", exp / "valid.acc.ave.pth", "--beam_size",
              "3", "--ngpu", "0", "--maxlenratio", "-6"]
    stage = common + ["--decode_sets", "tst", "--tasks", "st mt asr", "--dump_dir", dump.parent, "--exp_dir", exp,
                      "--nj", "2"]
    plan = tmp_path / "ref_plan"  # the reference: one decode per task in one process
    run_tool("salign.bin.st_inference", stage + ["--job", "1"], tmp_path, "job1.log")
    run_tool("salign.bin.st_inference", stage + ["--job", "2"], tmp_path, "job2.log")
    run_tool("salign.bin.st_inference", stage + ["--merge"], tmp_path, "merge.log")
    lines = [f"--task {t} --data_path_and_name_and_type {dump}/"
             + ("text.en,src_text,text" if t == "mt" else "feats.scp,speech,kaldi_ark")
             + f" --output_dir {tmp_path / 'ref' / t}" for t in ("st", "mt", "asr")]
    plan.write_text("\n".join(lines) + "\n")
    run_tool("salign.bin.st_inference", common + ["--plan", plan], tmp_path, "ref.log")
    for task in ("st", "mt", "asr"):
        got, ref = read(exp / f"decode_{task}_tst"), read(tmp_path / "ref" / task)
        assert got["token_int"] == ref["token_int"] and got["text"] == ref["text"], task
        assert (exp / f"decode_{task}_tst" / ".stamp").is_file()
