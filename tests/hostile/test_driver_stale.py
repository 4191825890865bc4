"""No stale result from the stage driver (issue 13, item 1) and runtime faults as one line (item 3), on ONE debug run
of the mini recipe up to stage 10 (shared by the module; one test set, one job per stage-3 set to keep it short):

* stage 3 extracts again a set whose wav changed in place (same name and length) and says why; a set whose stamp is
  up to date is skipped with one line saying so; stages 11 and 12 then refuse the filtered dumps and shapes made
  from the old features until stages 4 and 10 have run again;
* stage 13 refuses hypotheses that are missing or older than what they were decoded from, stages 12, 14 and 15 a
  model that is missing or older than what it was trained from;
* stage 11 does not mark a training done that left no model, resumes only a training with the same inputs, and
  trains a changed config (same file name) from scratch, saying why;
* an argument error on a recipe with data writes nothing, and the fixed command then completes.
"""
from __future__ import annotations

import hashlib
import re
import sys
import wave
from pathlib import Path

import pytest

from tests.hostile.driver import mini_recipe, one_error, run, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hostile_driver")]  # one worker: one recipe run

FIXED = ["--debug", "true", "--test_sets", "tst-COMMON", "--train_eval_size", "0", "--nj", "1"]
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    dst = mini_recipe(tmp_path_factory.mktemp("stale"))
    proc = run(dst, ["./run.sh", *FIXED, "--stop_stage", "10"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return dst


def driver(recipe: Path, *args: str, env=None):
    return run(recipe, ["./run.sh", *FIXED, *args], env)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rewrite_samples(path: Path) -> None:
    """The same wav (header, length) with every sample halved: other audio, same name and size."""
    with wave.open(str(path), "rb") as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    assert params.sampwidth == 2
    samples = memoryview(bytearray(frames)).cast("h")
    for i in range(len(samples)):
        samples[i] //= 2
    size = path.stat().st_size
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        w.writeframes(samples.tobytes())
    assert path.stat().st_size == size


def test_stage3_extracts_a_wav_changed_in_place_again_and_says_why(recipe):
    ark = recipe / "dump" / "fbank" / "dev" / "split1" / "feats.1.ark"
    old = digest(ark)
    wav = Path((recipe / "data" / "dev" / "wav.scp").read_text().split()[1])
    rewrite_samples(wav)
    # a stray argument first: one line, nothing written; then the fixed command
    before = snapshot(recipe)
    one_error(driver(recipe, "--stage", "3", "--stop_stage", "3", "tst-HE"), "unexpected argument 'tst-HE'")
    assert snapshot(recipe) == before
    proc = driver(recipe, "--stage", "3", "--stop_stage", "3")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert re.search(rf"stage 3: dump/fbank/dev: 1/1 shard\(s\) extracted again \(shard 1: input {re.escape(str(wav))} "
                     r"changed\)", proc.stdout), proc.stdout
    for dset in ("train", "tst-COMMON"):
        assert f"stage 3: dump/fbank/{dset} is up to date, skipped (every shard's stamp matches its audio's content" \
            in proc.stdout, proc.stdout
    assert digest(ark) != old
    proc = driver(recipe, "--stage", "3", "--stop_stage", "3")
    assert proc.returncode == 0 and "stage 3: dump/fbank/dev is up to date, skipped" in proc.stdout, proc.stdout
    assert "extracted again" not in proc.stdout
    # the stages after 3 were made from the old features: made again, so that the tests after this one see a
    # consistent recipe (the refusal of stale dumps: test_training_and_decoding_refuse_filtered_dumps_...)
    proc = driver(recipe, "--stage", "4", "--stop_stage", "10")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


def test_too_little_disk_for_the_features_is_one_line(recipe):
    before = snapshot(recipe)
    one_error(driver(recipe, "--stage", "3", "--stop_stage", "4", "--min_free_gb", "100000000"), "GB free in dump",
              "point --dumpdir elsewhere")
    assert snapshot(recipe) == before


def stamp_decode(recipe: Path, model: Path, dset: str = "tst-COMMON") -> None:
    """A decode dir of exp/st_fake as stage 12 leaves it: hypotheses (here the references) and the stamp last."""
    d = recipe / "exp" / "st_fake" / f"decode_st_{dset}"
    (d / "1best_recog").mkdir(parents=True, exist_ok=True)
    (d / "1best_recog" / "text").write_text((recipe / "dump" / "filtered" / dset / "text.es").read_text())
    proc = run(recipe, [sys.executable, "-m", "salign.bin.stamp", "write", "--stamp", d / ".stamp", "--input",
                        model.relative_to(recipe), f"dump/filtered/{dset}/feats.scp", "--output",
                        d / "1best_recog" / "text"])
    assert proc.returncode == 0, proc.stderr


def test_stage13_scores_no_missing_or_stale_hypotheses(recipe):
    score = ["--stage", "13", "--stop_stage", "13", "--st_tag", "fake", "--decode_tasks", "st"]
    before = snapshot(recipe)
    one_error(driver(recipe, *score), "exp/st_fake/decode_st_tst-COMMON: not decoded", "run stage 12 first")
    assert snapshot(recipe) == before
    model = recipe / "exp" / "st_fake" / "model.pth"
    model.parent.mkdir(parents=True)
    model.write_text("model 1\n")
    stamp_decode(recipe, model)
    model.write_text("model 2\n")  # a new model with the same name and size: the hypotheses are not its own
    before = snapshot(recipe)
    one_error(driver(recipe, *score), "decode_st_tst-COMMON: its hypotheses are out of date (input "
              "exp/st_fake/model.pth changed since they were decoded)", "run stage 12 first")
    assert snapshot(recipe) == before
    model.write_text("model 1\n")
    proc = driver(recipe, *score)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "| tst-COMMON | 100.00 |" in (recipe / "RESULTS.md").read_text()


def test_training_marks_done_only_with_a_model_and_retrains_a_changed_config(recipe):
    conf = recipe / "conf" / "debug" / "hostile.yaml"
    conf.write_text((recipe / "conf" / "debug" / "train_st_salign.yaml").read_text())
    exp = recipe / "exp" / "st_hostile"
    train = ["--stage", "11", "--stop_stage", "11", "--pretrain_mt", "false", "--st_config", "conf/debug/hostile.yaml"]
    # no epoch: no model, so no stamp (a re-run would otherwise skip it)
    one_error(driver(recipe, *train, "--st_args", "--max_epoch 0"),
              "exp/st_hostile: training ended without exp/st_hostile/train.acc.ave.pth, so it is not marked done")
    assert not (exp / ".train.stamp").exists()
    # the fix: a training that started with other options is not resumed
    proc = driver(recipe, *train, "--st_args", "--max_epoch 1")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "option command changed since the interrupted training started" in proc.stdout, proc.stdout
    assert (exp / ".train.stamp").is_file() and (exp / "train.acc.ave.pth").is_file()
    # the config edited in place (same file name): trained again, from scratch, saying why
    conf.write_text(conf.read_text().replace("lr: 0.002", "lr: 0.001"))
    proc = driver(recipe, *train, "--st_args", "--max_epoch 1")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert ("input conf/debug/hostile.yaml changed; the previous training's files moved to exp/st_hostile/previous/, "
            "training from scratch") in proc.stdout, proc.stdout
    assert (exp / "previous" / "train.acc.ave.pth").exists() and (exp / "train.acc.ave.pth").is_file()
    # --ngpu 1 without a GPU: one line before any work; the fix finds the training complete
    before = snapshot(recipe)
    one_error(driver(recipe, *train, "--st_args", "--max_epoch 1", "--ngpu", "1", env=NO_GPU),
              "--ngpu 1, but torch sees 0 CUDA GPU(s)", "add --ngpu 0")
    assert snapshot(recipe) == before
    proc = driver(recipe, *train, "--st_args", "--max_epoch 1", "--ngpu", "0")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "stage 11: exp/st_hostile is complete, skipped (its stamp is up to date" in proc.stdout, proc.stdout
    # the stages after training read the model: not one whose config changed since, nor a missing one
    conf.write_text(conf.read_text().replace("lr: 0.001", "lr: 0.003"))
    before = snapshot(recipe)
    one_error(driver(recipe, "--stage", "14", "--stop_stage", "14", "--st_tag", "hostile"),
              "stage 14: the model in exp/st_hostile is out of date (input conf/debug/hostile.yaml changed since it "
              "was trained)", "run stage 11 first")
    one_error(driver(recipe, "--stage", "15", "--stop_stage", "15", "--st_tag", "nothing"),
              "stage 15: model exp/st_nothing/train.acc.ave.pth not found", "run stage 11 first")
    assert snapshot(recipe) == before


def test_training_and_decoding_refuse_filtered_dumps_older_than_the_features(recipe):
    """Stage 3 run again on changed audio, stages 4 and 10 not: the filtered dumps and shapes are those of the old
    features, so stage 11 and stage 12 refuse them (one line, nothing written) until stages 4 and 10 have run."""
    for dset in ("dev", "tst-COMMON"):
        rewrite_samples(Path((recipe / "data" / dset / "wav.scp").read_text().split()[1]))
    proc = driver(recipe, "--stage", "3", "--stop_stage", "3")
    assert proc.returncode == 0 and "stage 3: dump/fbank/dev: 1/1 shard(s) extracted again" in proc.stdout, \
        (proc.stdout + proc.stderr)[-3000:]
    check = ["--stage", "11", "--stop_stage", "11", "--pretrain_mt", "false", "--train_st", "false"]
    model = recipe / "exp" / "st_stale" / "fake.pth"
    model.parent.mkdir(parents=True)
    model.write_text("a model\n")
    def outputs() -> dict:  # all but the config checker's cache (its stamps are written before any stage runs)
        return {k: v for k, v in snapshot(recipe).items() if not k.startswith("exp/.check_config/")}

    before = outputs()
    one_error(driver(recipe, *check), "stage 11: dump/filtered/dev is out of date (input dump/fbank/dev/.done changed "
              "since it was made)", "run stages 4 and 10 again")
    decode = ["--stage", "12", "--stop_stage", "12", "--st_tag", "stale", "--inference_model", "fake.pth"]
    one_error(driver(recipe, *decode),
              "stage 12: dump/filtered/tst-COMMON is out of date (input dump/fbank/tst-COMMON/.done changed since it "
              "was made)", "run stages 4 and 10 again")
    assert outputs() == before
    proc = driver(recipe, "--stage", "4", "--stop_stage", "4")  # stage 4 alone: the shapes are still the old ones
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    one_error(driver(recipe, *check), "stats/dev is out of date (input dump/filtered/dev changed since "
              "it was made)", "run stages 4 and 10 again")
    proc = driver(recipe, "--stage", "10", "--stop_stage", "11", "--pretrain_mt", "false", "--train_st", "false")
    assert proc.returncode == 0 and "stage 11b: skipped: --train_st false" in proc.stdout, \
        (proc.stdout + proc.stderr)[-3000:]
