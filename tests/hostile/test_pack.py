"""A packed model works anywhere (issue 22, item 1), on the tiny S-Align model with global CMVN (tests/conftest.py).

Before: stage 14's ``model.zip`` held the config and the model only; the files the config names (here the CMVN stats
``dump/fbank/train/cmvn.npz``) stayed in the recipe, so the archive did not load anywhere else, and the missing CMVN
file was reported as a "truncated or corrupt model file ... re-run training". Now:

* ``salign.bin.pack`` writes every file the config names into the archive under its relative name, the config
  rewritten to it, and loads the archive in a fresh process from an empty directory before it renames it into place;
* unpacked anywhere, the model decodes with ``salign.bin.st_inference`` from any working directory to the same
  hypotheses as in its recipe, and with ESPnet's ``Speech2Text.from_pretrained("model.zip")`` (espnet_model_zoo);
* the recipe's config read elsewhere names the missing file as such.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hostile_pack")]
CMVN = "dump/fbank/train/cmvn.npz"


def run(module: str, args: List, cwd: Path) -> Tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def packed(model_dir, tmp_path_factory) -> Tuple[Path, Path]:
    """A recipe directory as stage 14 sees it (exp/st with config and model, the CMVN stats under dump/, the results
    table) and the archive packed from it: (recipe, model.zip)."""
    recipe = tmp_path_factory.mktemp("recipe")
    (recipe / "exp" / "st").mkdir(parents=True)
    conf = yaml.safe_load((model_dir / "config.yaml").read_text())
    (recipe / CMVN).parent.mkdir(parents=True)
    shutil.copy(conf["normalize_conf"]["stats_file"], recipe / CMVN)
    conf["normalize_conf"]["stats_file"] = CMVN  # as the recipe's training writes it: relative to the recipe
    (recipe / "exp" / "st" / "config.yaml").write_text(yaml.safe_dump(conf))
    shutil.copy(model_dir / "valid.acc.ave.pth", recipe / "exp" / "st" / "valid.acc.ave.pth")
    (recipe / "exp" / "st" / "RESULTS.md").write_text("# results\n")
    rc, out = run("salign.bin.pack", ["st", "--st_train_config", "exp/st/config.yaml", "--st_model_file",
                                      "exp/st/valid.acc.ave.pth", "--option", "exp/st/RESULTS.md", "--outpath",
                                      "exp/st/packed/model.zip"], recipe)
    assert rc == 0, out[-3000:]
    assert "loads on its own from an empty directory" in out
    return recipe, recipe / "exp" / "st" / "packed" / "model.zip"


def decode(config: Path, model: Path, feats: Path, out: Path, cwd: Path) -> Dict[str, str]:
    rc, log = run("salign.bin.st_inference", ["--st_train_config", config, "--st_model_file", model,
                                              "--data_path_and_name_and_type", f"{feats},speech,kaldi_ark",
                                              "--beam_size", "2", "--ngpu", "0", "--output_dir", out], cwd)
    assert rc == 0, log[-3000:]
    return dict(line.split(maxsplit=1) if " " in line else (line, "")
                for line in (out / "1best_recog" / "text").read_text().splitlines())


@pytest.fixture(scope="module")
def reference(packed, tiny_data, tmp_path_factory) -> Dict[str, str]:
    """The hypotheses of the model decoded in its recipe directory, from its own files."""
    recipe, _ = packed
    return decode(Path("exp/st/config.yaml"), Path("exp/st/valid.acc.ave.pth"), tiny_data / "feats.scp",
                  tmp_path_factory.mktemp("ref") / "out", recipe)


def test_the_archive_holds_every_file_the_config_names_under_its_relative_name(packed):
    recipe, archive = packed
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        conf = yaml.safe_load(z.read("exp/st/config.yaml"))
        meta = yaml.safe_load(z.read("meta.yaml"))
    assert {"meta.yaml", "exp/st/config.yaml", "exp/st/valid.acc.ave.pth", CMVN, "exp/st/RESULTS.md"} <= names
    assert conf["normalize_conf"]["stats_file"] == CMVN
    assert meta["yaml_files"] == {"st_train_config": "exp/st/config.yaml"}
    assert meta["files"] == {"st_model_file": "exp/st/valid.acc.ave.pth"}
    assert sorted(p.name for p in archive.parent.iterdir()) == ["model.zip"]  # no temporary file left


def test_unpacked_elsewhere_it_decodes_from_any_directory_as_in_its_recipe(packed, reference, tiny_data, tmp_path):
    recipe, archive = packed
    feats, want = tiny_data / "feats.scp", reference
    where = tmp_path / "some" / "where"
    with zipfile.ZipFile(archive) as z:
        z.extractall(where / "m")
    empty = tmp_path / "empty"
    empty.mkdir()
    got = decode(where / "m" / "exp" / "st" / "config.yaml", where / "m" / "exp" / "st" / "valid.acc.ave.pth", feats,
                 tmp_path / "out", empty)
    assert got == want and len(got) == len(feats.read_text().splitlines())
    # the recipe's own config read elsewhere: the missing CMVN file named as such, not as a damaged model
    rc, log = run("salign.bin.st_inference", ["--st_train_config", recipe / "exp/st/config.yaml", "--st_model_file",
                                              recipe / "exp/st/valid.acc.ave.pth", "--data_path_and_name_and_type",
                                              f"{feats},speech,kaldi_ark", "--output_dir", tmp_path / "o"], empty)
    errors = [ln for ln in log.splitlines() if ln.startswith("ERROR [")]
    assert rc == 2 and "Traceback" not in log, log[-3000:]
    assert errors == [f"ERROR [st_inference]: {recipe / 'exp/st/config.yaml'}: normalize_conf.stats_file names {CMVN}"
                      ", which does not exist here (fix: decode in the recipe directory the model was trained in, or "
                      "use its packed model.zip (stage 14), which carries every file its config names)"], errors


def test_espnets_speech2text_from_pretrained_decodes_the_archive(packed, reference, tiny_data, tmp_path):
    """ESPnet's documented way to use a packed model (espnet_model_zoo unpacks it into its cache), for a salign model
    after ``register_with_espnet()``: the same 1-best as salign's decoder, in a fresh process in an empty directory."""
    _, archive = packed
    feats, want = tiny_data / "feats.scp", reference
    key = sorted(want)[0]
    script = f"""
import kaldiio, torch
import salign.tasks.st as t
t.register_with_espnet()
from espnet2.bin.st_inference import Speech2Text
s2t = Speech2Text.from_pretrained({str(archive)!r}, beam_size=2, device="cpu")
feats = torch.as_tensor(dict(kaldiio.load_scp({str(feats)!r}))[{key!r}])
print("HYP", s2t(feats)[0][0])
"""
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-c", script], cwd=empty, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    hyp = [ln[4:] for ln in proc.stdout.splitlines() if ln.startswith("HYP ")]
    assert hyp == [want[key]], (hyp, want[key])
