"""A missing or damaged model file at decoding (stage 12, ``salign.bin.st_inference``) and packing (stage 14,
``salign.bin.pack``) (issue 13, item 3): one line naming the file and the fix (re-train, or pick a checkpoint with
``--inference_model``), no traceback, nothing written; with the model restored the same command completes.

Before: a truncated ``.pth`` was a 20-line ``OSError``/``RuntimeError`` traceback from ``torch.load`` at stage 12 and
was packed without a word at stage 14; a missing one was "input is missing (fix: run the stage that makes it first)"
at stage 12 and a ``FileNotFoundError`` traceback at stage 14.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import List, Tuple

import pytest

from salign.utils.io import run_cli
from tests.conftest import run_tool, train_args

pytestmark = pytest.mark.xdist_group("hostile_model")  # one worker: the module's model is trained once
FIX = "(fix: re-run training (stage 11) to write it, or pick a checkpoint that exists with the recipe's " \
      "--inference_model"


def run(module: str, *args) -> Tuple[int, List[str]]:
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    return proc.returncode, (proc.stdout + proc.stderr).splitlines()


def one_error(rc: int, lines: List[str], tool: str) -> str:
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    assert rc == 2 and len(errors) == 1 and errors[0].startswith(f"ERROR [{tool}]: "), lines[-20:]
    assert not any("Traceback" in ln for ln in lines), lines[-20:]
    return errors[0]


def cli_error(capsys, main, argv: List[str]) -> str:
    """A tool's ``main`` as its command line runs it: exit status 2, exactly one ``ERROR [..]`` line on stderr (the
    decoder prints its command line first, as ESPnet's tools do), no traceback; returns the line."""
    with pytest.raises(SystemExit) as exc:
        run_cli(main, argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.splitlines()
    errors = [ln for ln in err if ln.startswith("ERROR [")]
    assert len(errors) == 1 and len(err) <= 2 and not any("Traceback" in ln for ln in err), err
    return errors[0]


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory) -> Path:
    """A tiny S-Align model after one epoch of the real st_train."""
    work = tmp_path_factory.mktemp("model")
    run_tool("salign.bin.st_train", train_args(tiny_data, work / "st") + ["--max_epoch", "1"], work, "log_st")
    return work / "st"


def layout(tmp_path: Path, tiny_data: Path, config: Path) -> Tuple[Path, List[str]]:
    """A recipe's dump/tst and exp dir; returns (exp, the stage-12 options without --job/--merge)."""
    dump, exp = tmp_path / "dump", tmp_path / "exp"
    (dump / "tst").mkdir(parents=True)
    lines = (tiny_data / "feats.scp").read_text().splitlines()[:3]
    (dump / "tst" / "feats.scp").write_text("\n".join(lines) + "\n")
    exp.mkdir()
    shutil.copy(config, exp / "config.yaml")
    return exp, ["--st_train_config", str(exp / "config.yaml"), "--st_model_file", str(exp / "valid.acc.ave.pth"),
                 "--beam_size", "2", "--ngpu", "0", "--decode_sets", "tst", "--tasks", "st", "--dump_dir", str(dump),
                 "--exp_dir", str(exp), "--nj", "1"]


def damage(model: Path, how: str, good: Path) -> None:
    if how == "truncated":  # an interrupted save or copy
        model.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif how == "empty":
        model.write_bytes(b"")
    elif how == "broken_link":  # valid.acc.ave.pth -> valid.acc.ave_1best.pth, the target gone
        os.symlink("valid.acc.ave_1best.pth", model)
    elif how == "directory":
        model.mkdir()
    elif how == "not_torch":
        model.write_text("model weights go here\n")
    elif how != "missing":
        raise ValueError(how)


@pytest.mark.slow
def test_stage12_truncated_model_is_one_line_then_decodes_when_restored(tiny_data, trained, tmp_path, capsys):
    from salign.bin import st_inference

    exp, opts = layout(tmp_path, tiny_data, trained / "config.yaml")
    model = exp / "valid.acc.ave.pth"
    damage(model, "truncated", trained / "valid.acc.best.pth")
    rc, lines = run("salign.bin.st_inference", *opts, "--job", "1")
    line = one_error(rc, lines, "st_inference")
    assert line.startswith(f"ERROR [st_inference]: {model}: truncated model file") and FIX in line, line
    assert not list(exp.glob("decode_*")), "nothing written"
    shutil.copy(trained / "valid.acc.best.pth", model)
    capsys.readouterr()
    st_inference.main(opts + ["--job", "1"])
    assert f"[st_inference] st -> {exp}/decode_st_tst/output.1: 3/3 utterances (100%)" in capsys.readouterr().err
    st_inference.main(opts + ["--merge"])
    assert len((exp / "decode_st_tst" / "1best_recog" / "token").read_text().splitlines()) == 3
    assert (exp / "decode_st_tst" / ".stamp").is_file()


@pytest.mark.parametrize("how,says", [("missing", "model file not found"), ("empty", "empty model file"),
                                      ("broken_link", "broken link to 'valid.acc.ave_1best.pth'"),
                                      ("directory", "a directory, not a model file"),
                                      ("not_torch", "not a PyTorch model file")])
def test_stage12_every_unusable_model_file_is_one_line_before_any_work(tiny_data, tmp_path, capsys, how, says):
    from salign.bin import st_inference

    config = tmp_path / "config.yaml"
    config.write_text("{}\n")  # never read: the model file is checked first
    exp, opts = layout(tmp_path, tiny_data, config)
    damage(exp / "valid.acc.ave.pth", how, config)
    for mode in (["--job", "1"], ["--merge"]):
        err = cli_error(capsys, st_inference.main, opts + mode)
        assert f"{exp / 'valid.acc.ave.pth'}: {says}" in err and FIX in err, err
    assert not list(exp.glob("decode_*"))


def test_a_single_decode_names_the_model_file_too(tiny_data, tmp_path, capsys):
    from salign.bin import st_inference

    config = tmp_path / "config.yaml"
    config.write_text("{}\n")
    err = cli_error(capsys, st_inference.main, [
        "--st_train_config", str(config), "--st_model_file", str(tmp_path / "none.pth"), "--ngpu", "0",
        "--data_path_and_name_and_type", f"{tiny_data / 'feats.scp'},speech,kaldi_ark", "--output_dir",
        str(tmp_path / "out")])
    assert f"{tmp_path / 'none.pth'}: model file not found" in err and FIX in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_stage14_packing_checks_the_model_and_writes_the_archive_atomically(trained, tmp_path, capsys):
    from salign.bin import pack

    out = tmp_path / "packed" / "model.zip"
    model = tmp_path / "valid.acc.ave.pth"
    args = ["st", "--st_train_config", str(trained / "config.yaml"), "--st_model_file", str(model), "--outpath",
            str(out)]
    rc, lines = run("salign.bin.pack", *args)  # missing
    assert one_error(rc, lines, "pack") == f"ERROR [pack]: {model}: model file not found (given as " \
        f"--st_model_file) {FIX} (e.g. valid.acc.best.pth))"
    damage(model, "truncated", trained / "valid.acc.best.pth")
    assert f"{model}: truncated model file" in cli_error(capsys, pack.main, args)
    model.unlink()
    good = trained / "valid.acc.best.pth"
    data = bytearray(good.read_bytes())  # damage inside the archive, its index intact: found by reading it all
    with zipfile.ZipFile(good) as z:
        info = max(z.infolist(), key=lambda i: i.compress_size)
    data[info.header_offset + 100: info.header_offset + 200] = b"\0" * 100
    model.write_bytes(bytes(data))
    assert f"{model}: corrupt model file (its entry" in cli_error(capsys, pack.main, args)
    assert not out.parent.exists() or not list(out.parent.iterdir()), "nothing written"
    shutil.copy(good, model)
    rc, lines = run("salign.bin.pack", *args)
    assert rc == 0, lines
    with zipfile.ZipFile(out) as z:
        assert any(n.endswith("valid.acc.ave.pth") for n in z.namelist())
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.zip"]
