"""The recipe's decoding stage (stage 12): every set decoded as every task, in ``nj`` jobs plus one merge.

``st_inference --decode_sets "tst-COMMON tst-HE" --tasks "st mt asr" --dump_dir dump/fbank/filtered --exp_dir exp/st
--nj N --job J`` decodes job J's share of the keys of each set (:func:`salign.decode.jobs.key_shares` of the sorted
keys of ``<dump_dir>/<set>/<speech scp>``) as each task into ``<exp_dir>/decode_<task>_<set>/output.J``, one process,
each model loaded once. The same options with ``--merge`` instead of ``--job`` merge the jobs' outputs into
``decode_<task>_<set>/<n>best_recog/{text,token,token_int,score}`` (ESPnet's files) and only then write the
directory's completion stamp (:class:`salign.utils.stamp.Stamp`: the model, its config, the decoding config, the
set's data files and the decoding options). A directory whose stamp is fresh is skipped (``skip: ... is up to
date``); any other is decoded again, the reason printed (e.g. ``input exp/st/valid.acc.ave.pth changed``). A job's
share that an interrupted run finished (its ``output.J`` record, written last, matches today's model, data and
options, and it holds the share's keys) is not decoded again: killed and re-run, stage 12 redoes only what was cut.
MT reads ``<set>/text.<src_lang>``. ``--decode_options`` (every decode) and ``--mt_options`` (MT) are shell-quoted
option strings added after the command line's, e.g. the recipe's ``--maxlenratio 2.0`` for MT.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from salign.decode.jobs import key_shares, merge_outputs, read_keys, write_keys
from salign.utils.io import InputError, atomic_write
from salign.utils.stamp import Stamp

# options that change what a decode writes (besides its model and data files)
DECODE_OPTIONS = ("task", "batched", "batch_size", "batch_frames", "incremental_cache", "seed", "dtype", "ngpu")
NOT_OPTIONS = {"st_train_config", "st_model_file"}  # recorded as stamp inputs (content), not as paths
UNCHANGED = "its model, config, decoding config, data and options are unchanged"
RECORD = ".decoded.json"  # in each job's output dir: the stamp record (inputs, options) it decoded with


def add_stage_args(parser: argparse.ArgumentParser) -> None:
    """The stage-12 options of ``st_inference``."""
    g = parser.add_argument_group("Recipe decoding stage (all sets and tasks; --job J of --nj, then --merge)")
    g.add_argument("--decode_sets", default=None, help="the sets under --dump_dir to decode (space-separated)")
    g.add_argument("--tasks", default="st mt asr", help="tasks to decode each set as (space-separated)")
    g.add_argument("--dump_dir", default="dump/fbank/filtered",
                   help="holds <set>/<speech scp> and <set>/text.<src_lang>")
    g.add_argument("--exp_dir", default=None, help="the model's dir: outputs go to <exp_dir>/decode_<task>_<set>")
    g.add_argument("--speech", default="feats.scp,speech,kaldi_ark",
                   help="the speech file of each set, name and type (wav.scp,speech,sound for raw audio)")
    g.add_argument("--src_lang", default="en", help="MT reads <set>/text.<src_lang>")
    g.add_argument("--decode_options", default="", help="options added for every decode (shell-quoted)")
    g.add_argument("--mt_options", default="", help="options added for MT decodes, after --decode_options")
    g.add_argument("--nj", type=int, default=1, help="number of decoding jobs")
    g.add_argument("--job", type=int, default=None, help="this job's number (1..nj)")
    g.add_argument("--merge", action="store_true", help="merge the jobs' outputs and stamp each decode dir")
    g.add_argument("--job_log", default=None, help="the jobs' log files, JOB standing for the job number")


@dataclass
class DecodeDir:
    """One set decoded as one task."""

    dset: str
    task: str
    path: Path
    keys_file: Path  # the set's speech file: its keys are split among the jobs
    args: argparse.Namespace  # the options of this decode (without key file and output dir)

    def stamp(self) -> Stamp:
        """The directory's completion stamp."""
        data = [p for p, _, _ in self.args.data_path_and_name_and_type]
        inputs = [self.args.st_train_config, self.args.st_model_file, str(self.keys_file)] + data
        if self.args.task != "mt":
            inputs += referenced_files(self.keys_file)
        if getattr(self.args, "config", None):
            inputs.append(self.args.config)
        options = {k: v for k, v in sorted(vars(self.args).items()) if k in self.option_names()}
        return Stamp(self.path / ".stamp", list(dict.fromkeys(inputs)), options)

    @staticmethod
    def option_names() -> List[str]:
        from salign.decode.runner import S2T_KEYS

        return [k for k in S2T_KEYS + DECODE_OPTIONS if k not in NOT_OPTIONS]


def referenced_files(scp: Path) -> List[str]:
    """The files a ``feats.scp`` (``ark:offset``) or ``wav.scp`` (audio file) refers to, once each (pipes skipped)."""
    from salign.data.kaldi import read_table

    out = {}
    for value in read_table(scp).values():
        if value.endswith("|"):
            continue
        path = re.sub(r":\d+$", "", value)
        out.setdefault(path, None)
    return [p for p in out if Path(p).is_file()]


def decode_dirs(args: argparse.Namespace, argv: Sequence[str],
                parse: Callable[[List[str]], argparse.Namespace]) -> List[DecodeDir]:
    """Every (set, task) of the stage options, with its own parsed decoding options."""
    if not args.decode_sets or not args.exp_dir:
        raise InputError("the decoding stage needs --decode_sets and --exp_dir", fix="give both")
    speech_file, name, kind = args.speech.split(",")
    out = []
    for dset in args.decode_sets.split():
        keys_file = Path(args.dump_dir) / dset / speech_file
        if not keys_file.is_file():
            raise InputError("no such file", keys_file, fix="run stage 4 for this set first")
        for task in args.tasks.split():
            extra = ["--task", task] + shlex.split(args.decode_options)
            if task == "mt":
                text = Path(args.dump_dir) / dset / f"text.{args.src_lang}"
                extra += ["--data_path_and_name_and_type", f"{text},src_text,text"] + shlex.split(args.mt_options)
            else:
                extra += ["--data_path_and_name_and_type", f"{keys_file},{name},{kind}"]
            out.append(DecodeDir(dset, task, Path(args.exp_dir) / f"decode_{task}_{dset}", keys_file,
                                 parse(list(argv) + extra)))
    return out


def run_job(dirs: Sequence[DecodeDir], job: int, nj: int) -> None:
    """Decode this job's share of every directory that is not up to date (into ``<dir>/output.<job>``)."""
    from salign.decode.runner import Session, decode, prepare

    if not 1 <= job <= nj:
        raise InputError(f"--job {job} must be between 1 and --nj {nj}")
    todo = []
    for d in dirs:
        stamp = d.stamp()
        reason = stamp.reason()
        if reason is None:
            print(f"[st_inference] skip: {d.path} is up to date ({UNCHANGED})", file=sys.stderr)
            continue
        share = key_shares(read_keys(d.keys_file), nj)[job - 1]
        if share and job_done(d, stamp, job, share):
            print(f"[st_inference] skip: {d.path / f'output.{job}'} is complete (job {job}/{nj} of an interrupted "
                  f"run decoded these {len(share)} utterances with the same model, data and options)",
                  file=sys.stderr)
            continue
        print(f"[st_inference] decoding {d.dset} as {d.task} -> {d.path} ({reason}; job {job}/{nj}: "
              f"{len(share)} utterances)", file=sys.stderr)
        if share:
            todo.append((d, share))
    session = Session()
    for d, _ in todo:  # every decode's options and model checked before the first decode starts
        prepare(d.args, session)
    for d, share in todo:
        out = d.path / f"output.{job}"
        shutil.rmtree(out, ignore_errors=True)
        keys = write_keys(d.path / "split" / f"keys.{job}", share)
        args = argparse.Namespace(**dict(vars(d.args), key_file=str(keys), output_dir=str(out)))
        decode(args, session)
        with atomic_write(out / RECORD) as f:  # what this job decoded, for the merge to check
            json.dump(d.stamp().record(), f, sort_keys=True)


def job_done(d: DecodeDir, stamp: Stamp, job: int, share: Sequence[str]) -> bool:
    """Whether ``output.<job>`` is this job's finished decode of ``share`` with today's model, data and options: its
    record (written last, atomically) matches the stamp, and its 1-best token ids hold exactly the share."""
    from salign.data.kaldi import read_table

    out = d.path / f"output.{job}"
    try:
        got = json.loads((out / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if got != json.loads(json.dumps(stamp.record(), sort_keys=True)):
        return False
    token_int = out / "1best_recog" / "token_int"
    return token_int.is_file() and set(read_table(token_int)) == set(share)


def run_merge(dirs: Sequence[DecodeDir], nj: int, job_log: Optional[str] = None) -> None:
    """Merge the jobs' outputs of every directory that is not up to date, then write its stamp."""
    for d in dirs:
        stamp = d.stamp()
        reason = stamp.reason()
        if reason is None:
            print(f"[st_inference] skip: {d.path} is up to date ({UNCHANGED})")
            continue
        check_job_records(d, stamp, nj, job_log)
        stamp.path.unlink(missing_ok=True)
        n = merge_outputs(d.path, key_shares(read_keys(d.keys_file), nj), job_log)
        stamp.write(outputs=sorted(d.path.glob("*best_recog/token_int")))
        print(f"[st_inference] {d.path}: {n} utterances decoded ({reason})")


def check_job_records(d: DecodeDir, stamp: Stamp, nj: int, job_log: Optional[str]) -> None:
    """Every job with a share decoded this directory with today's model, data and options."""
    want = json.loads(json.dumps(stamp.record(), sort_keys=True))
    for j, share in enumerate(key_shares(read_keys(d.keys_file), nj), 1):
        record = d.path / f"output.{j}" / RECORD
        if not share:
            continue
        fix = f"re-run the decoding jobs (see {job_log.replace('JOB', str(j))})" if job_log else "re-run the jobs"
        try:
            got = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise InputError("the decoding job did not finish", record.parent, fix=fix) from None
        if got != want:
            raise InputError("decoded with another model, data or options than those given now", record.parent,
                             fix=fix)


def run_stage(args: argparse.Namespace, argv: Sequence[str], parse: Callable[[List[str]], argparse.Namespace]) -> None:
    """``--job J`` or ``--merge`` of the decoding stage."""
    if (args.job is None) == (not args.merge):
        raise InputError("the decoding stage runs as --job J (1..nj) or as --merge", fix="give one of them")
    from salign.decode.loader import check_model_file

    # before the stamps read them: one line naming the file and the fix
    if not args.st_train_config or not Path(args.st_train_config).is_file():
        raise InputError("no such file (given as --st_train_config)", args.st_train_config or "(none)",
                         fix="re-run training (stage 11): it writes config.yaml next to the model")
    check_model_file(args.st_model_file)
    dirs = decode_dirs(args, argv, parse)
    if args.merge:
        run_merge(dirs, args.nj, args.job_log)
    else:
        run_job(dirs, args.job, args.nj)
