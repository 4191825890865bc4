"""Kill -9 in the middle of stage 12 (decoding in --inference_nj jobs through the job launcher), then run it again:
the same hypotheses as a run that was never interrupted, and nothing half-decoded merged in between.

The stage as the driver runs it (egs/TEMPLATE/st.sh): ``utils/queue/local.sh JOB=1:2 .../decode.JOB.log python -m
salign.bin.st_inference --decode_sets ... --tasks "st mt asr" --nj 2 --job JOB``, then ``--merge``, on the tiny trained
model. The launcher and its jobs are killed with SIGKILL while job 2 decodes its first task (job 1 finished: one job
at a time). The merge then refuses job 2's unfinished share (its one-line error, nothing written); the re-run keeps
job 1's finished shares (not decoded again) and decodes job 2's; the merged files equal those of the uninterrupted
run.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from tests.conftest import REPO
from tests.hostile.kill import kill_when, run, start

pytestmark = pytest.mark.slow
LOCAL = REPO / "utils" / "queue" / "local.sh"
TASKS = ("st", "mt", "asr")
COPIES = 4


def layout(root: Path, tiny_data: Path, model_dir: Path) -> List[str]:
    """A recipe's dump/filtered/tst/{feats.scp,text.en} and exp dir with the model; the stage's options."""
    dump, exp = root / "dump", root / "exp"
    (dump / "tst").mkdir(parents=True)
    for name, out in (("feats.scp", "feats.scp"), ("src_text", "text.en")):  # 4 copies: 48 utterances, 24 a job
        rows = [ln.split(maxsplit=1) for ln in (tiny_data / name).read_text().splitlines()]
        (dump / "tst" / out).write_text("".join(sorted(f"{k}_{c} {v}\n" for c in range(COPIES) for k, v in rows)))
    exp.mkdir()
    for name in ("config.yaml", "valid.acc.ave.pth"):
        shutil.copy(model_dir / name, exp / name)
    return ["--st_train_config", str(exp / "config.yaml"), "--st_model_file", str(exp / "valid.acc.ave.pth"),
            "--beam_size", "3", "--ngpu", "0", "--batch_size", "2", "--decode_sets", "tst", "--tasks",
            " ".join(TASKS), "--dump_dir", str(dump), "--exp_dir", str(exp), "--nj", "2",
            "--job_log", str(exp / "decode_logdir" / "decode.JOB.log"), "--mt_options", "--maxlenratio 2.0"]


def jobs(args: List[str], exp: Path) -> list:
    """Stage 12's jobs as the driver launches them (here one at a time: job 1 ends before job 2 starts)."""
    return [LOCAL, "--max_jobs_run", "1", "JOB=1:2", f"{exp}/decode_logdir/decode.JOB.log", sys.executable, "-m",
            "salign.bin.st_inference", *args, "--job", "JOB"]


def merged(exp: Path) -> Dict[str, str]:
    """Every merged output file of the decode dirs (relative path -> text)."""
    out = {}
    for task in TASKS:
        for f in sorted((exp / f"decode_{task}_tst").glob("*best_recog/*")):
            out[str(f.relative_to(exp))] = f.read_text()
    return out


def test_decoding_killed_mid_job_resumes_to_the_same_hypotheses(tmp_path, tiny_data, model_dir):
    import torch

    from salign.bin.st_inference import main
    from salign.utils.io import InputError

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the jobs (OMP_NUM_THREADS=1): the same arithmetic
    try:
        ref_args = layout(whole, tiny_data, model_dir)
        for j in ("1", "2"):  # the uninterrupted run, in this process (no second ESPnet start)
            main(ref_args + ["--job", j])
        main(ref_args + ["--merge"])
        reference = merged(whole / "exp")
        assert len(reference) >= 3 * 3 and all(reference.values()), sorted(reference)

        args, exp = layout(killed, tiny_data, model_dir), killed / "exp"
        log2 = exp / "decode_logdir" / "decode.2.log"

        def mid_job2() -> bool:  # job 2 has decoded part of its first task's share
            return log2.is_file() and "decode_st_tst/output.2: " in log2.read_text()

        kill_when(start(jobs(args, exp), killed, "killed.log"), mid_job2, "while job 2 decodes")
        record = ".decoded.json"  # a job's record of a finished share
        for task in TASKS:
            assert (exp / f"decode_{task}_tst" / "output.1" / record).is_file()
        unfinished = [t for t in TASKS if not (exp / f"decode_{t}_tst" / "output.2" / record).exists()]
        assert "asr" in unfinished  # job 2's last task: not finished (not started, in fact)

        # the merge refuses job 2's unfinished share: one line, nothing written
        before = sorted((p, p.stat().st_mtime_ns) for p in exp.rglob("*"))
        with pytest.raises(InputError) as exc:
            main(args + ["--merge"])
        assert str(exc.value) == (f"{exp}/decode_{unfinished[0]}_tst/output.2: the decoding job did not finish (fix: "
                                  f"re-run the decoding jobs (see {log2}))")
        assert sorted((p, p.stat().st_mtime_ns) for p in exp.rglob("*")) == before
        assert not list(exp.glob("decode_*/*best_recog")) and not list(exp.glob("decode_*/.stamp"))

        run(jobs(args, exp), killed, "resumed.log")
        log1 = (exp / "decode_logdir" / "decode.1.log").read_text()
        assert log1.count("is complete (job 1/2 of an interrupted run decoded these 24 utterances") == 3, log1
        assert "[st_inference] st -> " not in log1  # nothing decoded again
        assert "decode_asr_tst/output.2: 24/24 utterances (100%)" in log2.read_text()
        main(args + ["--merge"])
    finally:
        torch.set_num_threads(threads)
    got = merged(exp)
    assert sorted(got) == sorted(reference)
    for name, text in reference.items():
        assert got[name] == text, name
    for task in TASKS:
        assert (exp / f"decode_{task}_tst" / ".stamp").is_file()
