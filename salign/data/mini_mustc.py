"""Generate a small real corpus in the exact MuST-C v1 layout from Debian packages (English -> Spanish only).

English sentences come from ``fortunes``; Spanish references from one ``apertium eng-spa`` pass over the whole
sentence pool in a fixed order (so a sentence's translation never depends on the seed or the sizes); speech from
``flite`` (mostly) and ``espeak-ng`` voices with varied speed and pitch, resampled by ``sox`` to 16 kHz mono 16-bit;
talks of about ``utts_per_talk`` utterances with silence gaps and a faint noise floor. Same options -> byte-identical
text, yaml and audio. Output: ``<out>/en-es/data/{train,dev,tst-COMMON,tst-HE}/{wav,txt}`` and
``<out>/en-es/.mini_mustc.json`` (the options; an identical re-run returns at once).
Only ``tgt='es'`` exists: Apertium has no English->German/French pair.
"""
from __future__ import annotations

import hashlib
import math
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from salign.utils.io import InputError, PathLike, atomic_dir, atomic_write
from salign.utils.progress import Progress
from salign.utils.stamp import Stamp

__all__ = ["SUPPORTED_TGT", "SPLITS", "MiniMustcOptions", "check_tools", "sentence_pool", "translated_pool",
           "generate"]

SUPPORTED_TGT = ("es",)
SPLITS = ("train", "dev", "tst-COMMON", "tst-HE")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
SAMPLE_RATE = 16000
FORMAT = 1  # bump when the output for given options changes
STAMP = ".mini_mustc.json"  # a salign.utils.stamp stamp of the options
CHUNK = 1000  # apertium chunk size: fixed, so translations do not depend on --nj
_SENTENCE = re.compile(r"^[A-Z][a-z]*(?:(?:[,;]? |['-])[A-Za-z]+)*[.!?]$")
_ABBREV = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|vs|etc|Inc|Ltd|Co|Mt|No|[A-Z])\.$")
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp")
ESPEAK_VARIANTS = ("", "+m3", "+m5", "+f2", "+f4", "+klatt2")


@dataclass(frozen=True)
class MiniMustcOptions:
    """Everything that determines the generated corpus (``nj`` does not)."""

    tgt: str = "es"
    n_train: int = 240
    n_dev: int = 40
    n_tst: int = 40
    seed: int = 1
    utts_per_talk: int = 10
    n_mt_extra: int = 0  # text-only pairs (not in any speech split) for MT pre-training; -1: all remaining

    def sizes(self) -> Dict[str, int]:
        """Segments per split (``n_tst`` applies to tst-COMMON and tst-HE each)."""
        return {"train": self.n_train, "dev": self.n_dev, "tst-COMMON": self.n_tst, "tst-HE": self.n_tst}

    def as_dict(self) -> dict:
        """Stamp content for ``.mini_mustc.json``."""
        return {"tool": "salign.bin.gen_mini_mustc", "format": FORMAT, "tgt": self.tgt, "n_train": self.n_train,
                "n_dev": self.n_dev, "n_tst": self.n_tst, "seed": self.seed, "utts_per_talk": self.utts_per_talk,
                "n_mt_extra": self.n_mt_extra}


def check_tools(tgt: str = "es") -> None:
    """Raise a one-line :class:`InputError` naming the Debian package of the first missing tool."""
    if tgt not in SUPPORTED_TGT:
        raise InputError(f"mini MuST-C supports only --tgt es, not '{tgt}' (Apertium has no eng-{tgt} pair here)",
                         fix="use --tgt es; for other pairs use the real MuST-C with salign.bin.prep_mustc")
    for cmd, pkg in (("sox", "sox"), ("flite", "flite"), ("espeak-ng", "espeak-ng"),
                     ("apertium", "apertium apertium-eng-spa")):
        if shutil.which(cmd) is None:
            raise InputError(f"'{cmd}' not found", fix=f"sudo apt-get install -y {pkg}")
    if not FORTUNES_DIR.is_dir():
        raise InputError("fortunes sentences not found", FORTUNES_DIR, fix="sudo apt-get install -y fortunes")
    modes = subprocess.run(["apertium", "-l"], capture_output=True, text=True).stdout.split()
    if "eng-spa" not in modes:
        raise InputError("apertium has no eng-spa pair", fix="sudo apt-get install -y apertium-eng-spa")


def sentence_pool() -> List[str]:
    """Clean English sentences from fortunes in a fixed order: plain letters/punctuation, capital start, final
    ``.!?``, 5-20 words, no duplicates."""
    seen, pool = set(), []
    for path in sorted(p for p in FORTUNES_DIR.iterdir() if p.is_file() and "." not in p.name):
        text = path.read_text(encoding="utf-8", errors="replace")
        for entry in re.split(r"^%\s*$", text, flags=re.M):
            for sent in re.split(r"(?<=[.!?])\s+", " ".join(entry.split())):
                if 5 <= len(sent.split()) <= 20 and _SENTENCE.match(sent) and not _ABBREV.search(sent) \
                        and sent not in seen:
                    seen.add(sent)
                    pool.append(sent)
    return pool


def _spanish_case(src: str, out: str) -> str:
    out = re.sub(r"\s+([,.;:!?])", r"\1", " ".join(out.split()))
    if out:
        out = out[0].upper() + out[1:]
    if src.endswith("?") and not out.startswith("¿"):
        out = "¿" + out
    elif src.endswith("!") and not out.startswith("¡"):
        out = "¡" + out
    return out


def _apertium(lines: List[str]) -> List[str]:
    text = "".join(ln[0].lower() + ln[1:] + "\n" for ln in lines)
    res = subprocess.run(["apertium", "-f", "txt", "eng-spa"], input=text, capture_output=True, text=True)
    out = res.stdout.split("\n")
    if res.returncode != 0 or len(out) < len(lines) or any(o.strip() for o in out[len(lines):]):
        raise InputError(f"apertium eng-spa failed ({res.stderr.strip()[:200] or 'line count mismatch'})",
                         fix="sudo apt-get install --reinstall apertium apertium-eng-spa")
    return out[:len(lines)]


def _known_words_only(pool: List[str]) -> List[str]:
    """Cheap pre-filter: drop sentences with words the eng-spa analyser does not know (they would come out marked
    with ``*`` anyway); saves about 40% of the slow full translation."""
    mode = Path("/usr/share/apertium/modes/eng-spa.mode")
    m = re.search(r"lt-proc '?([^' |]+automorf\.bin)", mode.read_text()) if mode.is_file() else None
    if not m or not Path(m.group(1)).is_file():
        return pool
    text = "".join(ln[0].lower() + ln[1:] + "\n" for ln in pool)
    res = subprocess.run(["lt-proc", m.group(1)], input=text, capture_output=True, text=True)
    out = res.stdout.split("\n")
    if res.returncode != 0 or len(out) < len(pool):
        return pool
    return [ln for ln, ana in zip(pool, out) if "/*" not in ana]


def _cache_dir() -> Path:
    base = os.environ.get("SALIGN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "salign")
    return Path(base)


def translated_pool(nj: int = 2, cache_dir: Optional[PathLike] = None) -> List[Tuple[str, str]]:
    """English/Spanish pairs: the whole pool translated in fixed-size chunks (deterministic for any ``nj``),
    lines with unknown-word marks (``* # @``) dropped. Cached (``$SALIGN_CACHE``, default ``~/.cache/salign``)."""
    pool = sentence_pool()
    h = hashlib.sha1(("\n".join(pool) + f"\n{CHUNK}").encode())
    for mode in sorted(Path("/usr/share/apertium/modes").glob("eng-spa*.mode")):
        h.update(mode.read_bytes())
    cache = Path(cache_dir) if cache_dir else _cache_dir()
    cache_file = cache / f"mini_mustc_eng-spa_{h.hexdigest()[:16]}.tsv"
    if cache_file.is_file():
        lines = cache_file.read_text(encoding="utf-8").split("\n")[:-1]
        return [tuple(ln.split("\t")) for ln in lines]  # type: ignore[misc]
    pool = _known_words_only(pool)
    chunks = [pool[i:i + CHUNK] for i in range(0, len(pool), CHUNK)]
    with ThreadPoolExecutor(max(1, nj)) as ex:
        spanish = [s for part in ex.map(_apertium, chunks) for s in part]
    pairs = [(en, _spanish_case(en, es)) for en, es in zip(pool, spanish) if not re.search(r"[*#@]", es)]
    pairs = [(en, es) for en, es in pairs if re.search(r"\w[.!?]$", es) and "\t" not in en + es]
    try:
        with atomic_write(cache_file) as f:
            f.writelines(f"{en}\t{es}\n" for en, es in pairs)
    except OSError:
        pass  # a read-only cache only costs time
    return pairs


def _fmt(seconds: float) -> str:
    """Exact decimal form of a sample-aligned time (n/16000 has at most 7 decimals)."""
    text = f"{seconds:.7f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _voice(rng: random.Random) -> dict:
    """Per-talk voice: flite ~70% (more intelligible), espeak-ng otherwise; speed and pitch varied."""
    if rng.random() < 0.7:
        return {"engine": "flite", "voice": rng.choice(FLITE_VOICES), "stretch": round(rng.uniform(0.85, 1.15), 2),
                "cents": rng.randrange(-200, 201, 25), "gain": round(rng.uniform(0.5, 0.9), 2)}
    return {"engine": "espeak", "voice": rng.choice(ESPEAK_VOICES) + rng.choice(ESPEAK_VARIANTS),
            "wpm": rng.randrange(145, 186, 5), "pitch": rng.randrange(30, 71, 5), "cents": 0,
            "gain": round(rng.uniform(0.5, 0.9), 2)}


def _run(cmd: List[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise InputError(f"{cmd[0]} failed: {res.stderr.strip().splitlines()[-1:] or res.returncode}",
                         fix=f"run by hand to see why: {' '.join(cmd[:6])} ...")


def _synth(text: str, voice: dict, workdir: Path, idx: int) -> np.ndarray:
    raw, wav = workdir / f"{idx}.raw.wav", workdir / f"{idx}.wav"
    if voice["engine"] == "flite":
        _run(["flite", "-voice", voice["voice"], "--setf", f"duration_stretch={voice['stretch']}",
              "-t", text, "-o", str(raw)])
    else:
        _run(["espeak-ng", "-v", voice["voice"], "-s", str(voice["wpm"]), "-p", str(voice["pitch"]), "-a", "70",
              "-w", str(raw), text])
    effects = (["pitch", str(voice["cents"])] if voice["cents"] else []) + ["rate", "16000", "gain", "-n", "-1"]
    _run(["sox", "-R", str(raw), "-b", "16", "-c", "1", "-e", "signed-integer", str(wav)] + effects)
    import soundfile

    audio, sr = soundfile.read(str(wav), dtype="float32")
    if sr != SAMPLE_RATE or audio.ndim != 1 or len(audio) == 0:
        raise InputError(f"synthesis produced bad audio ({sr} Hz, shape {audio.shape})", wav,
                         fix="check the sox/flite/espeak-ng installation")
    return audio * voice["gain"]


def _make_talk(job: Tuple[int, List[str], int, Path]) -> Tuple[str, List[Tuple[float, float]]]:
    """Synthesise one talk wav; return its file name and (offset, duration) per utterance."""
    talk_no, sentences, seed, wav_dir = job
    rng = random.Random(f"{seed}-talk-{talk_no}")
    voice = _voice(rng)
    pieces, times, pos = [], [], 0
    with tempfile.TemporaryDirectory(dir=wav_dir) as work:
        for i, text in enumerate(sentences):
            gap = np.zeros(int(SAMPLE_RATE * rng.uniform(0.3, 1.0 if i == 0 else 1.5)), dtype=np.float32)
            speech = _synth(text, voice, Path(work), i)
            pieces += [gap, speech]
            pos += len(gap)
            times.append((pos / SAMPLE_RATE, len(speech) / SAMPLE_RATE))
            pos += len(speech)
    pieces.append(np.zeros(int(SAMPLE_RATE * rng.uniform(0.3, 0.8)), dtype=np.float32))
    audio = np.concatenate(pieces)
    noise = np.random.default_rng([seed, talk_no]).standard_normal(len(audio)).astype(np.float32)
    audio = audio + noise * (10 ** (rng.uniform(-62, -54) / 20))
    pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype("<i2")
    name = f"ted_{talk_no}.wav"
    import soundfile

    soundfile.write(str(wav_dir / name), pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return name, times


def generate(out: PathLike, opts: MiniMustcOptions, nj: int = 2, log: Callable[[str], None] = print,
             cache_dir: Optional[PathLike] = None) -> Path:
    """Build ``<out>/en-<tgt>`` (see module doc) atomically; return its path. An identical corpus is reused."""
    start = time.time()
    sizes = opts.sizes()
    if min(sizes.values()) < 1 or opts.utts_per_talk < 1 or nj < 1:
        raise InputError(f"sizes, --utts_per_talk and --nj must be >= 1 (got {sizes}, {opts.utts_per_talk}, {nj})",
                         fix="e.g. --n_train 240 --n_dev 40 --n_tst 40")
    if opts.tgt not in SUPPORTED_TGT:
        check_tools(opts.tgt)
    pair_dir = Path(out) / f"en-{opts.tgt}"
    stamp = Stamp(pair_dir / STAMP, [], opts.as_dict())
    reason = stamp.reason()
    if reason is None:
        log(f"gen_mini_mustc: {pair_dir} already complete with the same options; nothing to do")
        return pair_dir
    if pair_dir.exists() and not stamp.path.exists():
        raise InputError(f"exists but was not built by gen_mini_mustc (no {STAMP})", pair_dir,
                         fix="remove it or choose another --out")
    if stamp.path.exists():
        log(f"gen_mini_mustc: {pair_dir} was built with other options ({reason}); rebuilding")
    check_tools(opts.tgt)
    pairs = translated_pool(nj, cache_dir)
    total = sum(sizes.values())
    if total > len(pairs):
        raise InputError(f"asked for {total} segments but only {len(pairs)} sentence pairs exist",
                         fix=f"reduce --n_train/--n_dev/--n_tst to {len(pairs)} in total")
    order = list(range(len(pairs)))
    random.Random(opts.seed).shuffle(order)
    with atomic_dir(pair_dir) as tmp:
        jobs, layout, pos, talk_no = [], [], 0, 0
        for split in SPLITS:
            (tmp / "data" / split / "wav").mkdir(parents=True)
            chosen = [pairs[i] for i in order[pos:pos + sizes[split]]]
            pos += sizes[split]
            n_talks = math.ceil(len(chosen) / opts.utts_per_talk)
            for t in range(n_talks):
                talk_no += 1
                part = chosen[t * len(chosen) // n_talks:(t + 1) * len(chosen) // n_talks]
                jobs.append((talk_no, [en for en, _ in part], opts.seed, tmp / "data" / split / "wav"))
                layout.append((split, talk_no, part))
        progress = Progress(total, "gen_mini_mustc: speech synthesis", log=log)  # counts and ETA, every 10 %
        results = []
        with ThreadPoolExecutor(nj) as ex:
            for job, result in zip(jobs, ex.map(_make_talk, jobs)):
                results.append(result)
                progress.update(len(job[1]))
        seconds = 0.0
        for split in SPLITS:
            txt = tmp / "data" / split / "txt"
            txt.mkdir()
            rows = [(talk_no, part, res) for (sp, talk_no, part), res in zip(layout, results) if sp == split]
            with open(txt / f"{split}.yaml", "w", encoding="utf-8") as fy, \
                    open(txt / f"{split}.en", "w", encoding="utf-8") as fe, \
                    open(txt / f"{split}.{opts.tgt}", "w", encoding="utf-8") as ft:
                for talk_no, part, (name, times) in rows:
                    for (en, es), (offset, dur) in zip(part, times):
                        fy.write(f"- {{duration: {_fmt(dur)}, offset: {_fmt(offset)}, rw: {len(en.split())}, "
                                 f"speaker_id: spk.{talk_no}, wav: {name}}}\n")
                        fe.write(en + "\n")
                        ft.write(es + "\n")
                        seconds += dur
        extra = pairs_left = [pairs[i] for i in order[pos:]]
        if opts.n_mt_extra >= 0:
            extra = pairs_left[: opts.n_mt_extra]
        if extra:
            (tmp / "mt-extra").mkdir()
            for lang, idx in (("en", 0), (opts.tgt, 1)):
                (tmp / "mt-extra" / f"mt-extra.{lang}").write_text("".join(p[idx] + "\n" for p in extra),
                                                                   encoding="utf-8")
        Stamp(tmp / STAMP, [], opts.as_dict()).write()  # no inputs: valid at the final path too
    log(f"gen_mini_mustc: {total} segments ({', '.join(f'{k} {v}' for k, v in sizes.items())}), "
        f"{seconds / 3600:.2f} h of speech, {len(extra)} text-only MT pairs, {time.time() - start:.1f} s -> {pair_dir}")
    return pair_dir
