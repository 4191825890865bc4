"""Stage 3's sharded, resumable dumps of a Kaldi data dir, shared by ``make_fbank`` (fbank ark/scp) and ``make_raw``
(per-utterance audio files).

Shard J (1-based) of N holds the J-th contiguous block of the utterance list sorted by id; its files live in
``OUT/splitN/`` and are written under temporary names (``.NAME.tmp``), renamed when all are complete, and followed by
a ``*.J.done`` stamp (:mod:`salign.utils.stamp`: the content of the shard's audio files, its segment list with speed
factors and audio paths, and the dump's options). A shard whose stamp matches is skipped; one with leftover
temporaries, a missing file or an outdated stamp is redone, so a recording replaced by another of the same name and
length is extracted again. The merge refuses to run until every shard is complete (naming the first that is not, its
log and the command that redoes it) and writes ``OUT/.done`` last: a stamp of the shard stamps and the merged files;
a shard that starts being redone removes it first, so an interrupted re-extraction leaves no finished-looking dump.
The tool decides alone whether stage 3 has work to do; the driver just runs it.

A tool subclasses :class:`ShardedDump` with what it writes per shard and what it merges; :func:`shard_main` is its
command line.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Type

from salign.data.datadir import Segment, read_data_dir
from salign.feats.fbank import check_audio_path, check_segments
from salign.utils.io import InputError
from salign.utils.progress import Progress
from salign.utils.stamp import Stamp


def shard_segments(segs: List[Segment], nj: int, job: int) -> List[Segment]:
    """The ``job``-th (1-based) of ``nj`` contiguous blocks of ``segs`` (sizes differ by at most one)."""
    base, extra = divmod(len(segs), nj)
    start = (job - 1) * base + min(job - 1, extra)
    return segs[start:start + base + (1 if job <= extra else 0)]


def segments_digest(segs: Sequence[Segment], wav_scp: Dict[str, str]) -> str:
    """A hash of a shard's segment list: ids, recordings, times, speed factors and audio paths."""
    h = hashlib.sha256()
    for s in segs:
        h.update(f"{s.utt}\t{s.rec}\t{s.start!r}\t{s.end!r}\t{s.speed!r}\t{wav_scp[s.rec]}\n".encode())
    return h.hexdigest()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class Shard:
    """The files of shard ``job`` in ``split``: ``names`` (``{j}`` = job; a name may be a directory) and a stamp."""

    def __init__(self, split: Path, job: int, names: Sequence[str], done: str, inputs: Sequence[str],
                 options: Dict[str, object]) -> None:
        self.split, self.job = split, job
        self.finals = [split / n.format(j=job) for n in names]
        self.temps = [p.with_name(f".{p.name}.tmp") for p in self.finals]
        self.done = split / done.format(j=job)
        self.stamp = Stamp(self.done, inputs, options)

    def complete(self) -> bool:
        """No leftover temporaries, and a done stamp matching the inputs, the options and the (present) files."""
        if any(t.exists() for t in self.temps) or not all(f.exists() for f in self.finals):
            return False
        return self.stamp.reason() is None

    @contextlib.contextmanager
    def writing(self) -> Iterator[List[Path]]:
        """Clear stale state, yield the temporary paths to write; then rename them in order and write the stamp.

        Temporaries are renamed in the order of ``names`` (write what others point at, e.g. an ark, first). On
        failure they are removed and the shard stays incomplete.
        """
        self.stamp.identities()  # the inputs as the shard starts: a change while it runs redoes it next time
        self.split.mkdir(parents=True, exist_ok=True)
        for p in self.temps + [self.done]:  # stale state from an interrupted or outdated run
            _remove(p)
        try:
            yield self.temps
            for tmp, final in zip(self.temps, self.finals):
                if tmp.is_dir():  # a directory cannot be renamed over an existing one
                    _remove(final)
                os.replace(tmp, final)
        except BaseException:
            for p in self.temps:
                _remove(p)
            raise
        self.stamp.write(self.finals)


class ShardedDump(ABC):
    """One stage-3 dump of a data dir into ``out`` in ``nj`` shards; subclasses say what a shard and a merge write.

    Class attributes: ``tool`` (the ``salign.bin`` module, named in logs and messages), ``shard_files`` (per-shard
    file names with ``{j}``, renamed into place in this order), ``shard_done`` (the shard stamp's name),
    ``merged_files`` (the merged outputs, which must exist for the merge to count as done) and ``out_example`` (for
    ``--help``). A subclass with options of its own adds them in :meth:`add_options` and reads them in
    :meth:`from_args`.
    """

    tool = ""
    shard_files: Sequence[str] = ()
    shard_done = ""
    merged_files: Sequence[str] = ()
    out_example = ""

    def __init__(self, data: Path, out: Path, nj: int) -> None:
        self.data, self.out, self.nj = data, out, nj
        self.segs, self.wav_scp = read_data_dir(data)
        self.split = out / f"split{nj}"
        #: the file segment errors name (with the line): ``DATA/segments``, or None (one recording per utterance)
        self.segments_file: Optional[Path] = data / "segments" if (data / "segments").is_file() else None
        #: the running shard's progress (counts and ETA in its log); :meth:`write_shard` calls ``update()``
        self.progress: Optional[Progress] = None

    @classmethod
    def add_options(cls, parser: argparse.ArgumentParser) -> None:
        """The tool's own command-line options (a hook: none by default)."""
        del parser

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ShardedDump":
        """The dump that parsed command-line options describe."""
        return cls(args.data, args.out.resolve(), args.nj)

    @abstractmethod
    def options(self) -> Dict[str, object]:
        """What the dump's contents depend on besides the segments (part of every stamp)."""

    @abstractmethod
    def write_shard(self, segs: List[Segment], temps: List[Path], finals: List[Path]) -> Tuple[int, float]:
        """Write one shard's ``temps`` (``finals``: where they will be); returns (utterances, seconds of audio)."""

    @abstractmethod
    def write_merged(self, shards: List[Shard]) -> str:
        """Write the merged outputs from the complete ``shards`` (atomically); returns a summary for the log."""

    def log(self, msg: str) -> None:
        """Progress line on stderr (ends up in the launcher's log)."""
        self.log_raw(f"{self.tool}: {msg}")

    @staticmethod
    def log_raw(msg: str) -> None:
        """A line on stderr as is."""
        print(msg, file=sys.stderr, flush=True)

    def advance(self) -> None:
        """One more utterance of the running shard written (progress lines with ETA)."""
        if self.progress is not None:
            self.progress.update()

    def shard(self, job: int) -> Shard:
        """Shard ``job`` (1..nj) with the stamp of its current inputs (its audio files, segments and options)."""
        mine = shard_segments(self.segs, self.nj, job)
        audio = sorted({check_audio_path(self.wav_scp[s.rec], s.rec, self.data / "wav.scp") for s in mine})
        options = dict(self.options(), segments=segments_digest(mine, self.wav_scp))
        return Shard(self.split, job, self.shard_files, self.shard_done, audio, options)

    def run_shard(self, job: int) -> bool:
        """Write shard ``job``; returns False if it was already complete and skipped."""
        shard = self.shard(job)
        if shard.complete():
            self.log(f"shard {job}/{self.nj} already complete, skipped")
            return False
        mine = shard_segments(self.segs, self.nj, job)
        # every recording opens and no segment overruns it, before the first one is decoded (fail at once, by line)
        check_segments(mine, self.wav_scp, where=self.data / "wav.scp", segments=self.segments_file)
        t0 = time.time()
        self.progress = Progress(len(mine), f"{self.tool}: shard {job}/{self.nj}", log=self.log_raw)
        # the merged dump stops counting as finished now (its files stay until the merge): a later stage must not
        # read it while a shard is being redone, nor after an interrupted redo (they check OUT/.done)
        (self.out / ".done").unlink(missing_ok=True)
        with shard.writing() as temps:
            n, audio_s = self.write_shard(mine, temps, shard.finals)
        wall = time.time() - t0
        self.log(f"shard {job}/{self.nj}: {n} utterances, {audio_s:.1f} s of audio in {wall:.1f} s "
                 f"({audio_s / max(wall, 1e-9):.0f}x real time)")
        return True

    def merge(self, logdir: Path) -> bool:
        """Check all shards, then write the merged outputs and ``.done`` last; False if already merged."""
        shards = [self.shard(j) for j in range(1, self.nj + 1)]
        for s in shards:
            if not s.complete():
                j = s.job
                raise InputError(f"feature shard {j}/{self.nj} is missing, incomplete or out of date (no matching "
                                 f"{s.done}); see {logdir / f'{self.tool}.{j}.log'}", self.out,
                                 fix=f"re-run the shard: python -m salign.bin.{self.tool} --data {self.data} "
                                     f"--out {self.out} --nj {self.nj} --job {j}")
        stamp = Stamp(self.out / ".done", [s.done for s in shards], {"tool": self.tool, "nj": self.nj})
        if stamp.reason() is None:
            self.log(f"{self.out} already merged, skipped")
            return False
        if stamp.path.exists():
            stamp.path.unlink()
        summary = self.write_merged(shards)
        stamp.write([self.out / name for name in self.merged_files])
        self.log(f"merged {self.nj} shards: {summary}")
        return True

    def merged_rows(self, shards: List[Shard], index: int) -> List[str]:
        """The sorted lines of the shards' ``shard_files[index]`` tables, one per utterance of the data dir."""
        rows: List[str] = []
        for s in shards:
            rows += s.finals[index].read_text(encoding="utf-8").splitlines()
        if len(rows) != len(self.segs):
            raise InputError(f"shards hold {len(rows)} utterances, the data dir {len(self.segs)}", self.out,
                             fix=f"delete {self.split} and re-run feature extraction")
        return sorted(rows)


def shard_parser(doc: str, dump_class: Type[ShardedDump]) -> argparse.ArgumentParser:
    """A stage-3 tool's options: data dir, output dir, shards, one shard or the merge, and the tool's own."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="Kaldi data dir (wav.scp, [segments], [utt2speed])")
    p.add_argument("--out", required=True, type=Path, help=f"output dir, e.g. {dump_class.out_example}")
    p.add_argument("--nj", type=int, default=1, help="number of shards")
    p.add_argument("--job", type=int, default=None, help="dump only this shard (1..nj)")
    p.add_argument("--merge", action="store_true", help="only merge the nj complete shards")
    p.add_argument("--logdir", type=Path, default=None, help="where shard logs are (default OUT/log); for messages")
    dump_class.add_options(p)
    return p


def shard_main(argv: Optional[Sequence[str]], dump_class: Type[ShardedDump], doc: str) -> int:
    """A stage-3 tool's command line (``doc``: its module docstring): one shard (``--job``), the merge (``--merge``),
    or all shards then the merge."""
    args = shard_parser(doc, dump_class).parse_args(argv)
    if args.nj < 1:
        raise InputError(f"--nj must be >= 1, got {args.nj}")
    if args.job is not None and not 1 <= args.job <= args.nj:
        raise InputError(f"--job must be in 1..{args.nj}, got {args.job}")
    if args.job is not None and args.merge:
        raise InputError("--job and --merge exclude each other; run the shards first, then --merge")
    dump = dump_class.from_args(args)
    if args.job is not None:
        dump.run_shard(args.job)
        return 0
    if not args.merge:
        check_segments(dump.segs, dump.wav_scp, where=dump.data / "wav.scp", segments=dump.segments_file)
        for j in range(1, args.nj + 1):
            dump.run_shard(j)
    dump.merge(args.logdir or dump.out / "log")
    return 0
