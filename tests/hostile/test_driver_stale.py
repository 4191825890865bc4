"""No stale result from the stage driver (issue 13, item 1) and runtime faults as one line (item 3), on ONE debug run
of the mini recipe up to stage 10 (shared by the module; one test set, one job per stage-3 set to keep it short):

* stage 3 extracts again a set whose wav changed in place (same name and length) and says why; a set whose stamp is
  up to date is skipped with one line saying so; stages 11 and 12 then refuse the filtered dumps and shapes made
  from the old features until stages 4 and 10 have run again;
* stage 13 refuses hypotheses that are missing or older than what they were decoded from, stages 12, 14 and 15 a
  model that is missing or older than what it was trained from;
* stage 11 does not mark a training done that left no model, resumes only a training with the same inputs, and
  trains a changed config (same file name) from scratch, saying why; a finished training whose model was cut short
  since is not "complete": it is resumed, which writes the model again (issue 22), and stage 14 refuses the damaged
  model naming stage 11;
* an argument error on a recipe with data writes nothing, and the fixed command then completes.
"""
from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from salign.utils.checkpoint import check_model_file
from tests.hostile.driver import REPO, mini_recipe, one_error, run, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hostile_driver")]  # one worker: one recipe run

FIXED = ["--debug", "true", "--pretrained", "false", "--test_sets", "tst-COMMON", "--train_eval_size", "0",
         "--nj", "1"]
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}
COMMITTED = (REPO / "egs" / "mini_mustc" / "RESULTS.md").read_text()  # the recipe's committed table


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    dst = mini_recipe(tmp_path_factory.mktemp("stale"))
    (dst / "RESULTS.md").write_text(COMMITTED)  # as in a checkout: debug runs must neither touch nor print it
    proc = run(dst, ["./run.sh", *FIXED, "--stop_stage", "10"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert COMMITTED.splitlines()[0] not in proc.stdout  # a run stopped before stage 13 prints no table
    return dst


def driver(recipe: Path, *args: str, env=None):
    return run(recipe, ["./run.sh", *FIXED, *args], env)


def quote_like_bash(word: str) -> str:
    """``printf %q WORD`` of bash."""
    return subprocess.run(["bash", "-c", 'printf %q "$1"', "_", word], capture_output=True, text=True,
                          check=True).stdout


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
    (d / "1best_recog" / "text").write_text((recipe / "dump" / "fbank" / "filtered" / dset / "text.es").read_text())
    proc = run(recipe, [sys.executable, "-m", "salign.bin.stamp", "write", "--stamp", d / ".stamp", "--input",
                        model.relative_to(recipe), f"dump/fbank/filtered/{dset}/feats.scp", "--output",
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
    # issue 22: a value with spaces (harmless here: stage 0's options), quoted in the reproduce line
    proc = driver(recipe, *score, "--corpus_opts", "--seed 3 --nj 2")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    # a debug run writes its table beside its model, prints it, and leaves the committed one alone (issue 22)
    table = (recipe / "exp" / "st_fake" / "RESULTS.md").read_text()
    assert "| tst-COMMON | 100.00 |" in table and table in proc.stdout
    assert (recipe / "RESULTS.md").read_text() == COMMITTED and COMMITTED not in proc.stdout
    # the reproduce line: every call that made these results (stages 0-10 by the fixture's run, 13 by this one; no
    # call of this salign made stages 11-12 of exp/st_fake), each quoted as printf %q quotes
    opts = " ".join(FIXED)
    reproduce = table.split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert reproduce == (f"cd {quote_like_bash(str(recipe))} && ./run.sh {opts} --stage 0 --stop_stage 10 && ./run.sh "
                         rf"{opts} --st_tag fake --decode_tasks st --corpus_opts --seed\ 3\ --nj\ 2 --stage 13 "
                         "--stop_stage 13"), reproduce
    calls = [shlex.split(c) for c in reproduce.split(" && ")[1:]]  # pasted into a shell: the words as given
    assert calls[1][-6:-3] == ["--corpus_opts", "--seed 3 --nj 2", "--stage"]


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
    # its model cut short since (an interrupted copy over it; issue 22): stage 14 refuses it naming stage 11, and
    # stage 11 does not call the training complete but resumes it, which writes the model again; then it is
    model = exp / "train.acc.ave.pth"
    whole = model.read_bytes()
    model.unlink()
    model.write_bytes(whole[: len(whole) // 2])
    before = snapshot(recipe)
    one_error(driver(recipe, "--stage", "14", "--stop_stage", "14", "--st_tag", "hostile"),
              "stage 14: exp/st_hostile/train.acc.ave.pth: truncated model file", "run stage 11 again")
    assert snapshot(recipe) == before
    proc = driver(recipe, *train, "--st_args", "--max_epoch 1", "--ngpu", "0")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "; output exp/st_hostile/train.acc.ave.pth: truncated model file (its zip index is missing or points past " \
        "the end); resuming the finished training to write it again)" in proc.stdout, proc.stdout
    check_model_file(model, deep=True)
    proc = driver(recipe, *train, "--st_args", "--max_epoch 1", "--ngpu", "0")
    assert proc.returncode == 0 and "stage 11: exp/st_hostile is complete, skipped" in proc.stdout, proc.stdout
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
    one_error(driver(recipe, *check), "stage 11: dump/fbank/filtered/dev is out of date (input dump/fbank/dev/.done "
              "changed "
              "since it was made)", "run stages 4 and 10 again")
    decode = ["--stage", "12", "--stop_stage", "12", "--st_tag", "stale", "--inference_model", "fake.pth"]
    one_error(driver(recipe, *decode),
              "stage 12: dump/fbank/filtered/tst-COMMON is out of date (input dump/fbank/tst-COMMON/.done changed "
              "since it was made)", "run stages 4 and 10 again")
    assert outputs() == before
    proc = driver(recipe, "--stage", "4", "--stop_stage", "4")  # stage 4 alone: the shapes are still the old ones
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    one_error(driver(recipe, *check), "stats/dev is out of date (input dump/fbank/filtered/dev changed since "
              "it was made)", "run stages 4 and 10 again")
    proc = driver(recipe, "--stage", "10", "--stop_stage", "11", "--pretrain_mt", "false", "--train_st", "false")
    assert proc.returncode == 0 and "stage 11b: skipped: --train_st false" in proc.stdout, \
        (proc.stdout + proc.stderr)[-3000:]


def digests(root: Path) -> dict:
    return {str(p.relative_to(root)): digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_raw_and_fbank_dumps_keep_their_own_lists_and_shapes(recipe):
    """Issue 22: --feats_type raw and fbank in one recipe shared dump/filtered and dump/stats and overwrote each
    other's lists. Each feature type's dump is ${dumpdir}/${feats_tag}/ with its features, filtered/ and stats/: a raw
    run beside the fbank one leaves the fbank lists as they were, and the fbank training still finds them current."""
    fbank = recipe / "dump" / "fbank"
    before = {d: digests(fbank / d) for d in ("filtered", "stats")}
    proc = driver(recipe, "--feats_type", "raw", "--stage", "3", "--stop_stage", "10")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "stage 4: length filtering -> dump/raw/filtered" in proc.stdout
    raw = recipe / "dump" / "raw"
    assert (raw / "filtered" / "train" / "wav.scp").is_file() and (raw / "stats" / "train" / "speech_shape").is_file()
    assert not (recipe / "dump" / "filtered").exists() and not (recipe / "dump" / "stats").exists()
    assert {d: digests(fbank / d) for d in ("filtered", "stats")} == before
    proc = driver(recipe, "--stage", "11", "--stop_stage", "11", "--pretrain_mt", "false", "--train_st", "false")
    assert proc.returncode == 0 and "stage 11b: skipped: --train_st false" in proc.stdout, \
        (proc.stdout + proc.stderr)[-3000:]


def test_lm_path_and_st_args_combine(recipe, tmp_path):
    """Issue 22: ``--lm_path`` was dropped when ``--st_args`` was given too (the README's way to pass other lm_conf
    knobs), so the run trained on whatever the config's default directory held. Here both reach the training: its
    config.yaml (the warm-up's, stopped at once with --max_epoch 0) has the LM directory and the other knob."""
    import yaml

    from salign.testing.tiny_llm import make_tiny_hf_lm

    lm = make_tiny_hf_lm(tmp_path / "tiny_lm", "qwen2", tokenizer="bytelevel")
    proc = driver(recipe, "--model_family", "llm", "--lm", "hf", "--lm_path", str(lm), "--st_args",
                  "--lm_conf dtype=float32", "--llm_warmup_args", "--max_epoch 0", "--stage", "11", "--stop_stage",
                  "11", "--pretrain_mt", "false")
    one_error(proc, "training ended without exp/st_train_st_llm_hf_warmup/train.acc.ave.pth")
    conf = yaml.safe_load((recipe / "exp" / "st_train_st_llm_hf_warmup" / "config.yaml").read_text())
    assert (conf["lm_conf"]["path"], conf["lm_conf"]["dtype"]) == (str(lm), "float32"), conf["lm_conf"]


def test_the_recipe_runs_from_a_checkout_whose_path_has_spaces(recipe, tmp_path):
    """Issue 22: a checkout under a path with a space broke stage 3 ("st.sh: line 334: ...: Is a directory"): the
    launcher's path was inside the command string. Here the checkout (its egs/TEMPLATE a copy, the rest linked to
    this one) and the recipe (a copy of this module's, its data made already) lie under "my checkout/": stages 3-13
    go through every launcher -- stage 3's jobs (train_cmd), stage 11's training (cuda_cmd through ESPnet's launch),
    stage 12's decoding (decode_cmd) -- and stage 13's reproduce line quotes the path."""
    root = tmp_path / "my checkout"
    (root / "egs").mkdir(parents=True)
    for name in ("tools", "utils", "salign", "conf"):
        (root / name).symlink_to(REPO / name)
    shutil.copytree(REPO / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE")
    dst = root / "egs" / "mini_mustc"
    shutil.copytree(recipe, dst, symlinks=True, ignore=lambda d, names: [  # the data, not the experiments
        n for n in names if n == ".salign.lock" or Path(d).name == "exp" and n.startswith(("st_", "mt_", "lm_"))])
    proc = run(dst, ["./run.sh", *FIXED, "--stage", "3", "--stop_stage", "13", "--pretrain_mt", "false", "--st_tag",
                     "spaced", "--st_args", "--max_epoch 1", "--decode_tasks", "st"], env={"SALIGN_ROOT": str(root)})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "stage 3: fbank for train (1 jobs)" in proc.stdout and "extracted again" not in proc.stdout, proc.stdout
    assert "stage 11b: S-Align multi-task training -> exp/st_spaced" in proc.stdout
    table = (dst / "exp" / "st_spaced" / "RESULTS.md").read_text()
    assert "| tst-COMMON |" in table and "cd egs/mini_mustc && ./run.sh" in table, table
