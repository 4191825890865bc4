"""Kill -9 in the middle of stage 3 (feature extraction in --nj jobs through the job launcher), then run it again:
byte for byte the features of a run that was never interrupted, and nothing half-written trusted in between.

The stage as the driver runs it (egs/TEMPLATE/st.sh): ``utils/queue/local.sh JOB=1:2 .../make_fbank.JOB.log python -m
salign.bin.make_fbank ... --job JOB``, then ``--merge``. The launcher and its jobs are killed with SIGKILL while job 2
is extracting (job 1 finished: one job at a time), so shard 2's ark is half-written under its temporary name:

* first from scratch: the merge and stage 4 refuse the unfinished extraction (one line, nothing written); the re-run
  skips shard 1 and redoes shard 2;
* then re-extracting after shard 2's audio changed in place (same name and length): the previous run's merged
  ``feats.scp`` is still there but no longer its stamp ``.done`` (removed when shard 2 started again), so neither
  stage 4 nor stage 10 (whose filtered dump was made from the old features) trusts them; once stage 3 is complete,
  stage 10 still refuses the filtered dump until stage 4 has run again (stage 3's stamp changed).
"""
from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO
from tests.hostile.kill import kill_when, run, start

pytestmark = pytest.mark.slow
LOCAL = REPO / "utils" / "queue" / "local.sh"
N_SEG = 30  # utterances per recording = per shard (~1 s of extraction each, long enough to be killed in)


def make_data(root: Path) -> Path:
    """Two 60 s recordings (noise: every frame differs) of 30 segments each, with transcripts and translations."""
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    with (data / "wav.scp").open("w") as scp, (data / "segments").open("w") as segs:
        for r in range(2):
            wav = root / f"rec{r}.wav"
            sf.write(wav, (rng.standard_normal(16000 * 60) * 0.1).astype(np.float32), 16000, subtype="PCM_16")
            scp.write(f"rec{r} {wav}\n")
            for k in range(N_SEG):
                segs.write(f"rec{r}_{k:02d} rec{r} {k * 2.0:.2f} {k * 2.0 + 1.9:.2f}\n")
    utts = [line.split()[0] for line in (data / "segments").read_text().splitlines()]
    (data / "text.en").write_text("".join(f"{u} hello world\n" for u in utts))
    (data / "text.de").write_text("".join(f"{u} hallo welt\n" for u in utts))
    return data


def extract(data: Path, out: Path) -> list:
    """Stage 3's jobs as the driver launches them (here one at a time: job 1 ends before job 2 starts)."""
    return [LOCAL, "--max_jobs_run", "1", "JOB=1:2", f"{out}/log/make_fbank.JOB.log", sys.executable, "-m",
            "salign.bin.make_fbank", "--data", data, "--out", out, "--nj", "2", "--job", "JOB"]


def merge(data: Path, out: Path) -> list:
    return [sys.executable, "-m", "salign.bin.make_fbank", "--data", data, "--out", out, "--nj", "2", "--merge"]


def tool(module: str, *args) -> list:
    return [sys.executable, "-m", f"salign.bin.{module}", *args]


def stage3(data: Path, out: Path, cwd: Path, name: str) -> None:
    run(extract(data, out), cwd, f"{name}.extract.log")
    run(merge(data, out), cwd, f"{name}.merge.log")


def kill_in_shard2(data: Path, out: Path, cwd: Path, name: str) -> None:
    """Start stage 3's jobs and kill them all while job 2 is part-way through its utterances."""
    log = out / "log" / "make_fbank.2.log"

    def mid_shard2() -> bool:
        text = log.read_text() if log.is_file() else ""
        return "make_fbank: shard 2/2: " in text and "utterances (100%)" not in text and "/30 utterances (" in text

    kill_when(start(extract(data, out), cwd, f"{name}.log"), mid_shard2, "while job 2 extracts")
    split = out / "split2"
    assert (split / "feats.1.done").is_file() and not (split / "feats.2.done").exists()
    assert (split / ".feats.2.ark.tmp").stat().st_size > 0  # half-written, under its temporary name


def one_line(proc, *parts: str, tool_name: str) -> None:
    """Exit 2 with one ``ERROR [tool]: ... (fix: ...)`` line holding ``parts``, no traceback."""
    out = proc.stdout if isinstance(proc.stdout, str) else ""
    assert proc.returncode == 2, out
    errors = [ln for ln in out.splitlines() if ln.startswith("ERROR [")]
    assert len(errors) == 1 and "Traceback" not in out, out
    assert errors[0].startswith(f"ERROR [{tool_name}]: ") and "(fix: " in errors[0], errors[0]
    for part in parts:
        assert part in errors[0], (part, errors[0])


def refused(cmd: list, cwd: Path, *parts: str, tool_name: str) -> None:
    """``cmd`` fails with the one-line error and writes nothing under ``cwd``."""
    before = snapshot(cwd)
    proc = run(cmd, cwd, "refused.log", ok=False)
    proc.stdout = (cwd / "refused.log").read_text()
    (cwd / "refused.log").unlink()
    one_line(proc, *parts, tool_name=tool_name)
    assert snapshot(cwd) == before


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file()}


def same_features(a: Path, b: Path) -> None:
    """Two stage-3 dumps hold the same bytes (the scp tables and shard stamps up to the dump's own directory)."""
    names = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file() and "log" not in p.parts)
    assert names == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file() and "log" not in p.parts)
    assert "split2/feats.2.ark" in names and not [n for n in names if n.endswith(".tmp")], names
    for name in names:
        if name == ".done":  # the merge's stamp: hashes of the shard stamps, which name the dump's own files
            continue
        x, y = (a / name).read_bytes(), (b / name).read_bytes()
        if name.endswith(".scp") or name.endswith(".done"):  # they name the dump's own files
            x, y = x.replace(str(a).encode(), b"OUT"), y.replace(str(b).encode(), b"OUT")
        assert x == y, name


def test_features_killed_mid_shard_resume_to_the_same_bytes(tmp_path):
    data = make_data(tmp_path)
    whole, out = tmp_path / "whole", tmp_path / "killed"
    stage3(data, whole, tmp_path, "whole")

    kill_in_shard2(data, out, tmp_path, "killed")
    refused(merge(data, out), tmp_path, "feature shard 2/2 is missing, incomplete or out of date",
            "make_fbank.2.log", "--nj 2 --job 2", tool_name="make_fbank")
    refused(tool("prepare_dump", "filter", "--data", data, "--feats", out, "--out", tmp_path / "filtered",
                 "--tgt_lang", "de"), tmp_path, "features are incomplete", "run stage 3", tool_name="prepare_dump")

    run(extract(data, out), tmp_path, "resumed.log")
    assert "shard 1/2 already complete, skipped" in (out / "log" / "make_fbank.1.log").read_text()
    assert "shard 2/2: 30/30 utterances (100%)" in (out / "log" / "make_fbank.2.log").read_text()
    run(merge(data, out), tmp_path, "resumed.merge.log")
    same_features(whole, out)


def halve(path: Path) -> None:
    """The same wav (header, length) with every sample halved."""
    with wave.open(str(path), "rb") as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    samples = np.frombuffer(frames, dtype="<i2") // 2
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        w.writeframes(samples.astype("<i2").tobytes())


def test_reextraction_killed_after_the_audio_changed_is_not_trusted_downstream(tmp_path):
    data = make_data(tmp_path)
    out, filtered, stats = tmp_path / "killed", tmp_path / "filtered", tmp_path / "stats"
    stage3(data, out, tmp_path, "first")
    filt = tool("prepare_dump", "filter", "--data", data, "--feats", out, "--out", filtered, "--tgt_lang", "de")
    shapes = tool("prepare_dump", "stats", "--dump", filtered, "--out", stats, "--tgt_lang", "de")
    run(filt, tmp_path, "filter.log")
    run(shapes, tmp_path, "stats.log")
    old_scp = (out / "feats.scp").read_bytes()

    size = (tmp_path / "rec1.wav").stat().st_size
    halve(tmp_path / "rec1.wav")  # shard 2's audio: other samples, same name and length
    assert (tmp_path / "rec1.wav").stat().st_size == size
    whole = tmp_path / "whole"
    stage3(data, whole, tmp_path, "whole")  # the reference: the new audio, never interrupted

    kill_in_shard2(data, out, tmp_path, "killed")
    # the previous merge's files are still there, but not its stamp: neither stage 4 nor stage 10 may use them
    assert (out / "feats.scp").read_bytes() == old_scp and not (out / ".done").exists()
    refused(filt, tmp_path, f"{out}: features are incomplete (no .done marker)", "run stage 3",
            tool_name="prepare_dump")
    refused(shapes, tmp_path, f"{filtered}: out of date (input {out}/.done is missing since it was made)",
            "run stage 4 (length filtering) again", tool_name="prepare_dump")
    run(extract(data, out), tmp_path, "resumed.log")
    run(merge(data, out), tmp_path, "resumed.merge.log")
    same_features(whole, out)
    refused(shapes, tmp_path, f"{filtered}: out of date (input {out}/.done changed since it was made)",
            "run stage 4 (length filtering) again", tool_name="prepare_dump")
    run(filt, tmp_path, "filter_again.log")
    run(shapes, tmp_path, "stats_again.log")
    assert (stats / ".stamp").is_file() and (stats / "speech_shape").is_file()
