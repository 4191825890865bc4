"""Checkpoints after a crash or a full disk (issue 22, item 2), on the real ``salign.bin.st_train`` (ESPnet's trainer).

Before: a disk that filled while ESPnet wrote ``<N>epoch.pth`` (or a crash then) left a complete ``checkpoint.pth``
("epoch N done") beside a truncated epoch file, and the disk-full showed only as ``basic_ios::clear: iostream
error``; every re-run resumed, trained nothing and died in the averaging with a traceback naming no file; deleting
the file gave another error. Now (:class:`salign.tasks.trainer.SafeTrainer`):

* the epoch file of the epoch ``checkpoint.pth`` records, truncated or deleted, is written again from it on resume
  (one line), and the run ends with a working averaged model; an older n-best epoch file that is damaged is named
  in one line and left out of the average;
* a damaged ``checkpoint.pth`` is one ERROR line with the exact fix, no traceback;
* a disk too full for the next checkpoint is named as such, before anything is written; the files of the last
  complete epoch are left as they were, and the same command resumes once there is space.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest
import torch

from salign.utils import checkpoint
from salign.utils.checkpoint import check_model_file, describe_damage, safe_save
from salign.utils.io import InputError
from tests.conftest import train_args

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hostile_checkpoints")]  # one worker: one training
EPOCHS = 3


def command(tiny_data: Path, out: Path, epochs: int = EPOCHS) -> List[str]:
    return [sys.executable, "-m", "salign.bin.st_train", *map(str, train_args(tiny_data, out)),
            "--max_epoch", str(epochs), "--resume", "true"]


def train(tiny_data: Path, out: Path, epochs: int = EPOCHS) -> Tuple[int, str]:
    proc = subprocess.run(command(tiny_data, out, epochs), capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory) -> Path:
    """A finished 3-epoch training (keep_nbest_models 2 by valid.acc) that each test copies and damages."""
    out = tmp_path_factory.mktemp("ckpt") / "exp"
    rc, log = train(tiny_data, out)
    assert rc == 0, log[-3000:]
    return out


def copy_of(trained: Path, tmp_path: Path) -> Path:
    exp = tmp_path / "exp"
    shutil.copytree(trained, exp, symlinks=True)
    return exp


def nbest(exp: Path) -> List[int]:
    stats = torch.load(exp / "checkpoint.pth", map_location="cpu", weights_only=False)["reporter"]["stats"]
    return sorted(stats, key=lambda e: -stats[e]["valid"]["acc"])[:2]


def truncate(path: Path) -> None:
    data = path.resolve().read_bytes()
    path.resolve().write_bytes(data[: len(data) // 2])


def test_damaged_epoch_files_are_written_again_or_left_out_and_the_run_ends_with_a_model(trained, tiny_data,
                                                                                        tmp_path):
    """The last epoch's file (truncated, then deleted) is written again from checkpoint.pth; an older n-best epoch's
    file, truncated, is named and left out of the average (one run for both, then one for the deleted file)."""
    exp = copy_of(trained, tmp_path)
    last = exp / f"{EPOCHS}epoch.pth"
    assert last.exists()  # the latest epoch's file is always kept (latest.pth)
    weights = torch.load(exp / "checkpoint.pth", map_location="cpu", weights_only=False)["model"]
    older = [e for e in nbest(exp) if e != EPOCHS]
    assert older, nbest(exp)  # (seed 0: epochs 3 and 2 are the n-best)
    bad = exp / f"{older[0]}epoch.pth"
    for damage in ("truncated", "deleted"):
        truncate(last) if damage == "truncated" else last.unlink()
        if damage == "truncated":
            truncate(bad)
        rc, log = train(tiny_data, exp)
        assert rc == 0 and "Traceback" not in log, log[-3000:]
        said = [ln for ln in log.splitlines() if f"{last}: " in ln and "written again from" in ln]
        assert len(said) == 1, log[-3000:]
        assert ("truncated model file" if damage == "truncated" else "missing") in said[0], said
        again = torch.load(last, map_location="cpu", weights_only=False)
        assert again.keys() == weights.keys() and all(torch.equal(again[k], weights[k]) for k in weights)
        check_model_file(exp / "valid.acc.ave.pth", deep=True)
        if damage == "truncated":
            said = [ln for ln in log.splitlines() if f"{bad}: " in ln]
            assert len(said) == 1 and "truncated model file" in said[0] and \
                "left out of the n-best average" in said[0], log[-3000:]
            # the average is the one usable n-best epoch: the last one
            assert os.path.realpath(exp / "valid.acc.ave.pth") == os.path.realpath(last), os.listdir(exp)


def test_a_damaged_checkpoint_is_one_line_with_the_fix(trained, tiny_data, tmp_path):
    exp = copy_of(trained, tmp_path)
    truncate(exp / "checkpoint.pth")
    rc, log = train(tiny_data, exp)
    errors = [ln for ln in log.splitlines() if ln.startswith("ERROR [")]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in log, log[-3000:]
    assert errors[0] == (f"ERROR [st_train]: {exp / 'checkpoint.pth'}: truncated model file (its zip index is "
                         f"missing or points past the end; given as --resume) (fix: delete {exp / 'checkpoint.pth'} "
                         "to train from scratch, or restore it)"), errors


def test_a_full_disk_is_named_before_anything_is_written_and_the_same_command_resumes(tiny_data, tmp_path,
                                                                                      monkeypatch):
    """Space for epoch 1's files, then a disk with 1 MB left: the save of epoch 2's checkpoint is refused as a full
    disk (in-process: the real trainer, the disk's free space given by the test); epoch 1's files are intact and the
    same command, with space again, resumes and finishes."""
    from salign.bin import st_train

    out = tmp_path / "exp"
    args = [str(a) for a in train_args(tiny_data, out)] + ["--max_epoch", "2", "--resume", "true"]
    real = checkpoint.free_bytes
    monkeypatch.setattr(checkpoint, "free_bytes",
                        lambda d: 1 << 20 if (Path(d) / "1epoch.pth").exists() else real(d))
    with pytest.raises(InputError) as exc:
        st_train.main(args)
    message = str(exc.value)
    assert message.startswith(f"{out / 'checkpoint.pth'}: disk full: 0.00 GB free on the disk of {out}, this "
                              "checkpoint needs ~"), message
    assert "then run the same training again: it resumes from its last complete epoch" in message
    assert not [p.name for p in out.iterdir() if ".partial" in p.name]
    assert torch.load(out / "checkpoint.pth", weights_only=False)["reporter"]["epoch"] == 1
    assert describe_damage(out / "1epoch.pth", deep=True) is None and not (out / "2epoch.pth").exists()
    monkeypatch.undo()
    rc, log = train(tiny_data, out, epochs=2)
    assert rc == 0, log[-3000:]
    assert "The training was resumed" in log and (out / "valid.acc.ave.pth").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (needs root and mount; skipped elsewhere), unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_a_disk_that_fills_during_the_write_is_named_and_leaves_no_file(small_disk, monkeypatch):
    """A disk that fills while the file is written (the estimate said it would fit): torch's writer fails; the error
    says disk full, the old file under the name is intact, no temporary file is left."""
    monkeypatch.setattr(checkpoint, "MARGIN", 0)
    target = small_disk / "checkpoint.pth"
    safe_save({"w": torch.zeros(10)}, target)
    before = target.read_bytes()
    monkeypatch.setattr(checkpoint, "object_bytes", lambda obj: 1)  # an estimate that is wrong
    with pytest.raises(InputError, match=r"checkpoint\.pth: disk full: "):
        safe_save({"w": torch.zeros(1 << 20)}, target)  # 4 MB on a 2 MB disk
    assert target.read_bytes() == before and sorted(p.name for p in small_disk.iterdir()) == ["checkpoint.pth"]
