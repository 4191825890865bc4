"""The new alignment configs train through ESPnet's st_train; select_layers and analyze_gap run on a trained model.

The three tiny models (contrastive, ot, multi = adversarial + ot + token-level contrastive) train for one epoch each
with ``salign.tasks.st.main`` (what ``python -m salign.bin.st_train`` runs), all in one process.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest
import torch
import yaml

from tests.conftest import REPO, run_tool, train_args

pytestmark = pytest.mark.slow
CONFIGS = {name: REPO / "tests" / "conf" / f"train_st_{name}_test.yaml" for name in ("contrastive", "ot", "multi")}
EXPECTED_STATS = {
    "contrastive": ("loss_align", "loss_ctr", "ctr_acc", "ctr_acc_rev"),
    "ot": ("loss_align", "loss_ot", "ot_l1", "ot_l2", "ot_transport_l1"),
    "multi": ("adversarial_disc_acc", "adversarial_loss_adv_d", "ot_loss_ot", "ot_ot_l1", "contrastive_loss_ctr",
              "contrastive_ctr_acc", "adversarial_loss", "ot_loss", "contrastive_loss"),
}


def epoch_stats(log: str, split: str) -> Dict[str, float]:
    """The last epoch's statistics of ``split`` from ESPnet's trainer log."""
    line = [x for x in log.splitlines() if "epoch results" in x][-1]
    part = line.split(f"[{split}]", 1)[1].split("[", 1)[0]
    return {k: float(v) for k, v in re.findall(r"(\w+)=([-0-9.e+]+)", part)}


# one process trains every config in turn (the imports dominate a tiny run); "=== name" lines split its log
TRAIN_ALL = """
import sys
from salign.tasks.st import main
for name, cmd in eval(sys.argv[1]):
    print("=== " + name, file=sys.stderr, flush=True)
    main(cmd)
"""


@pytest.fixture(scope="session")
def trained(tiny_data, tmp_path_factory) -> Dict[str, Path]:
    """Train each config for one epoch; returns name -> experiment directory (its log is ``<dir>.log``)."""
    work = tmp_path_factory.mktemp("aligns")
    jobs = [(name, [str(a) for a in train_args(tiny_data, work / name, config=config) + ["--max_epoch", "1"]])
            for name, config in CONFIGS.items()]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", TRAIN_ALL, repr(jobs)], cwd=work, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    (work / "train.log").write_text(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise AssertionError(f"st_train failed ({proc.returncode}); log {work / 'train.log'}:\n{tail}")
    for part in proc.stdout.split("=== ")[1:]:
        name, _, log = part.partition("\n")
        (work / f"{name}.log").write_text(log)
    return {name: work / name for name in CONFIGS}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_align_config_trains_one_epoch(name, trained):
    exp = trained[name]
    log = (exp.parent / f"{name}.log").read_text()
    for split in ("train", "valid"):
        stats = epoch_stats(log, split)
        for key in EXPECTED_STATS[name]:
            assert key in stats, (split, key)
            assert abs(stats[key]) < 1e4
        assert 0.0 <= stats[EXPECTED_STATS[name][2]] <= 1.0 or name == "ot"
    assert (exp / "valid.acc.ave.pth").is_file()
    assert yaml.safe_load((exp / "config.yaml").read_text())["align"] == name


def model_args(exp: Path, data: Path):
    return ["--st_train_config", exp / "config.yaml", "--st_model_file", exp / "valid.acc.ave.pth",
            "--feats", data / "feats.scp", "--src_text", data / "src_text"]


def test_select_layers_writes_what_layers_file_reads(trained, tiny_data, tmp_path, capsys):
    from salign.bin.select_layers import main
    from salign.losses.ot import OTAlign
    from salign.tasks.st import SAlignSTTask
    from salign.utils.io import InputError
    from tests.st.test_model import batch

    out = tmp_path / "sel" / "layers.yaml"
    args = [str(a) for a in model_args(trained["ot"], tiny_data)]
    assert main(args + ["--out", str(out), "--top_k", "2", "--weighting", "r1"]) == 0
    assert "selected layers" in capsys.readouterr().out
    sel = yaml.safe_load(out.read_text())
    assert sorted(sel["layers"]) == [1, 2] and sum(sel["weights"]) == pytest.approx(1.0, abs=1e-5)
    assert set(sel["retrieval"]) == {0, 1, 2} and sel["n_utts"] == 12
    for s in sel["retrieval"].values():
        assert 0.0 <= s["r1"] <= s["r5"] <= 1.0
    # the file drives --align ot through align_conf.layers_file, merged into the config's align_conf
    parser = SAlignSTTask.get_parser()
    parsed = parser.parse_args(["--config", str(CONFIGS["ot"]), "--token_type", "word", "--src_token_type", "word",
                                "--token_list", str(tiny_data / "tokens.txt"), "--src_token_list",
                                str(tiny_data / "tokens.txt"), "--input_size", "80",
                                "--align_conf", f"layers_file={out}"])
    model = SAlignSTTask.build_model(parsed).train()
    assert isinstance(model.align, OTAlign) and model.align.layers == sel["layers"]
    assert model.align.weights == pytest.approx(sel["weights"])
    _, stats, _ = model(**batch(tiny_data))
    assert all(f"ot_l{k}" in stats for k in sel["layers"])
    with pytest.raises(InputError, match="--top_k 3"):  # layer 0 is no candidate unless --include_input
        main(args + ["--out", str(out), "--top_k", "3"])
    assert main(args + ["--out", str(out), "--top_k", "3", "--include_input"]) == 0
    assert sorted(yaml.safe_load(out.read_text())["layers"]) == [0, 1, 2]


def test_analyze_gap_on_a_composite_model(trained, tiny_data, tmp_path):
    import matplotlib.image

    out = tmp_path / "gap"
    run_tool("salign.bin.analyze_gap", model_args(trained["multi"], tiny_data) + ["--out", out], tmp_path, "log")
    result = json.loads((out / "gap.json").read_text())
    assert result["n_utts"] == 12 and result["layers"] == ["0", "1", "2", "top"]
    for layer in result["layers"]:
        r = result["retrieval"][layer]
        assert 0.0 <= r["r1"] <= r["r5"] <= 1.0
        c = result["cosine"][layer]
        assert -1.0 <= c["unpaired"] <= 1.0 and -1.0 <= c["paired"] <= 1.0
        assert c["gap"] == pytest.approx(c["paired"] - c["unpaired"])
        assert 0.0 <= result["cka"][layer] <= 1.0 + 1e-9
        assert 0.0 <= result["mmd"][layer]["mmd2"] <= 2.0 and result["mmd"][layer]["sigma"] > 0
    disc = result["discriminator"]["adversarial"]  # found inside the composite
    assert 0.0 <= disc["acc_speech"] <= 1.0 and 0.0 <= disc["acc_text"] <= 1.0
    assert disc["acc"] == pytest.approx((disc["acc_speech"] + disc["acc_text"]) / 2)
    # same sentences, eval mode, same discriminator: what the trainer reported on the (identical) valid set
    valid = epoch_stats((trained["multi"].parent / "multi.log").read_text(), "valid")
    assert disc["acc_speech"] == pytest.approx(valid["adversarial_disc_acc_speech"], abs=1 / 12 + 1e-3)
    assert disc["acc_text"] == pytest.approx(valid["adversarial_disc_acc_text"], abs=1 / 12 + 1e-3)
    for png in ("pca_top.png", "retrieval.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        img = matplotlib.image.imread(out / png)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0
    assert not list(out.glob(".*.tmp"))


def test_analyze_gap_bad_inputs_are_one_line_errors(trained, tiny_data, tmp_path, capsys):
    from salign.bin.analyze_gap import main
    from salign.utils.io import InputError, run_cli

    args = [str(a) for a in model_args(trained["contrastive"], tiny_data)]
    other = tmp_path / "other_text"
    other.write_text("nobody hello\n")
    with pytest.raises(InputError, match="no utterance id is in both"):
        main(args[:-1] + [str(other), "--out", str(tmp_path / "g")])
    with pytest.raises(InputError, match="no such file"):
        main(args[:4] + ["--feats", str(tmp_path / "missing.scp")] + args[6:] + ["--out", str(tmp_path / "g")])
    with pytest.raises(SystemExit) as exc:  # what `python -m salign.bin.analyze_gap` does with it
        run_cli(main, args[:-1] + [str(other), "--out", str(tmp_path / "g")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    errors = [x for x in err.splitlines() if x.startswith("ERROR")]
    assert len(errors) == 1 and "no utterance id" in errors[0] and "Traceback" not in err
    # a model without a modal network: no discriminator section, everything else present
    main(args + ["--out", str(tmp_path / "g2"), "--no_plots"])
    result = json.loads((tmp_path / "g2" / "gap.json").read_text())
    assert result["discriminator"] is None and set(result["retrieval"]) == {"0", "1", "2", "top"}
    assert not (tmp_path / "g2" / "pca_top.png").exists()
    assert torch.isfinite(torch.tensor(result["cka"]["top"]))
