"""Generate a small real corpus in the exact MuST-C v1 layout from Debian packages (English -> Spanish only).

English sentences come from ``fortunes``; Spanish references from one ``apertium eng-spa`` pass over the whole
sentence pool in a fixed order (so a sentence's translation never depends on the seed or the sizes); speech from
``flite`` (mostly) and ``espeak-ng`` voices with varied speed and pitch, resampled by ``sox`` to 16 kHz mono 16-bit;
talks of about ``utts_per_talk`` utterances with silence gaps and a faint noise floor. Same options -> byte-identical
text, yaml and audio. Output: ``<out>/en-es/data/{train,dev,tst-COMMON,tst-HE}/{wav,txt}`` and
``<out>/en-es/.mini_mustc.json`` (the options; an identical re-run returns at once).
Only ``tgt='es'`` exists: Apertium has no English->German/French pair.

Two sentence pools, both from the same fortunes files in a fixed order and each translated once and cached:

* the *strict* pool (:func:`sentence_pool`, :func:`translated_pool`): plain 5-20-word sentences, the only source of
  speech; ``n_mt_extra N > 0`` takes N of its pairs left over by the speech splits as text-only MT pairs;
* the *wide* pool (:func:`wide_sentence_pool`, :func:`translated_wide_pool`): text only, never spoken: sentences the
  strict filter rejects but that are good MT text (3-30 words; digits, quotes, colons, parentheses, dashes allowed;
  still no unknown-word marks after Apertium). ``n_mt_extra -1`` writes every usable pair the text source offers:
  all strict pairs left over plus all wide pairs, each sentence once and none equal (case and punctuation aside) to a
  sentence of a speech split.

Held-out voices (``n_tst_unseen N > 0``): the flite voice ``rms`` and the espeak-ng voice family ``en-gb-scotland``
(with all its variants) are held out (:data:`HELD_OUT_FLITE`, :data:`HELD_OUT_ESPEAK`): train, dev, tst-COMMON and
tst-HE are spoken only by the other voices, and a fifth split ``tst-UNSEEN`` of N segments only by the held-out ones;
both parts keep the ~70/30 flite/espeak-ng mix. The voice of every talk is written to ``<out>/en-es/voices.tsv``
(split, wav, speaker_id, engine, voice, parameters) and the held-out list to the stamp. With ``n_tst_unseen 0`` (the
default) every split draws from all voices, no ``voices.tsv`` is written and the corpus is the one of before the
option existed, byte for byte.
"""
from __future__ import annotations

import functools
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
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from salign.utils.io import InputError, PathLike, atomic_dir, atomic_write
from salign.utils.progress import Progress
from salign.utils.stamp import Stamp

__all__ = ["SUPPORTED_TGT", "SPLITS", "UNSEEN_SPLIT", "HELD_OUT_FLITE", "HELD_OUT_ESPEAK", "VOICES_TSV",
           "MiniMustcOptions", "check_tools", "sentence_pool", "wide_sentence_pool", "translated_pool",
           "translated_wide_pool", "voice_lists", "generate"]

SUPPORTED_TGT = ("es",)
SPLITS = ("train", "dev", "tst-COMMON", "tst-HE")
UNSEEN_SPLIT = "tst-UNSEEN"  # the held-out-voice test split (only with n_tst_unseen > 0)
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
# held out with n_tst_unseen > 0: one flite voice (US male; the seen part keeps a US and a Scottish male and the US
# female) and one espeak-ng voice family (the base voice with every variant; the seen part keeps en-us, en-gb and
# en-gb-x-rp). The variants are timbre modifiers shared by both parts; the base voice (dialect rules) is not.
HELD_OUT_FLITE = ("rms",)
HELD_OUT_ESPEAK = ("en-gb-scotland",)
VOICES_TSV = "voices.tsv"  # per talk: split, wav, speaker_id, engine, voice, parameters (n_tst_unseen > 0 only)
WIDE_FORMAT = 1  # bump when the wide pool's filter or post-processing changes (its cache key and the -1 stamp)
WIDE_WORDS = (3, 30)
_WIDE = re.compile(r"""^["'(]?[A-Z0-9][A-Za-z0-9 ,;:'"()%$&-]*[.!?]["')]?$""")
_WIDE_SPLIT = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\")])\s+")
_STREAM_SPECIAL = re.compile(r"([\\^$/<>@\[\]{}*])")  # reserved in Apertium's stream format: escaped for lt-proc


@dataclass(frozen=True)
class MiniMustcOptions:
    """Everything that determines the generated corpus (``nj`` does not)."""

    tgt: str = "es"
    n_train: int = 240
    n_dev: int = 40
    n_tst: int = 40
    seed: int = 1
    utts_per_talk: int = 10
    n_mt_extra: int = 0  # text-only pairs (not in any speech split) for MT pre-training; -1: every usable pair
    n_tst_unseen: int = 0  # segments of tst-UNSEEN (held-out voices); 0: no held-out voices, no tst-UNSEEN

    def splits(self) -> Tuple[str, ...]:
        """The speech splits, in generation order (tst-UNSEEN last, only with ``n_tst_unseen > 0``)."""
        return SPLITS + ((UNSEEN_SPLIT,) if self.n_tst_unseen > 0 else ())

    def sizes(self) -> Dict[str, int]:
        """Segments per split (``n_tst`` applies to tst-COMMON and tst-HE each; tst-UNSEEN has ``n_tst_unseen``)."""
        sizes = {"train": self.n_train, "dev": self.n_dev, "tst-COMMON": self.n_tst, "tst-HE": self.n_tst}
        if self.n_tst_unseen > 0:
            sizes[UNSEEN_SPLIT] = self.n_tst_unseen
        return sizes

    def as_dict(self) -> dict:
        """Stamp content for ``.mini_mustc.json``. Keys added after the first release appear only when their option
        differs from the default, so the stamp of a default build (and of any existing corpus) is unchanged."""
        d = {"tool": "salign.bin.gen_mini_mustc", "format": FORMAT, "tgt": self.tgt, "n_train": self.n_train,
             "n_dev": self.n_dev, "n_tst": self.n_tst, "seed": self.seed, "utts_per_talk": self.utts_per_talk,
             "n_mt_extra": self.n_mt_extra}
        if self.n_mt_extra < 0:  # -1 now also takes the wide text-only pool: an older -1 corpus must be rebuilt
            d["mt_extra_pools"] = f"strict+wide-{WIDE_FORMAT}"
        if self.n_tst_unseen > 0:
            d["n_tst_unseen"] = self.n_tst_unseen
            d["held_out"] = {"flite": list(HELD_OUT_FLITE), "espeak": list(HELD_OUT_ESPEAK)}
        return d


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


def _fortune_files() -> Tuple[Tuple[str, int, int], ...]:
    """The fortunes files read, in a fixed order (sorted by name; the ``off/`` directory and the ``.dat``/``.u8``
    companions are not read), each with its size and ``mtime_ns``: the key of the pools' in-process cache."""
    files = sorted(p for p in FORTUNES_DIR.iterdir() if p.is_file() and "." not in p.name)
    return tuple((str(p), st.st_size, st.st_mtime_ns) for p, st in ((p, p.stat()) for p in files))


def _fortune_entries(files: Sequence[Tuple[str, int, int]]) -> Iterator[str]:
    """Every fortune (the text between ``%`` lines) of ``files``, whitespace collapsed, in order."""
    for name, _, _ in files:
        text = Path(name).read_text(encoding="utf-8", errors="replace")
        for entry in re.split(r"^%\s*$", text, flags=re.M):
            yield " ".join(entry.split())


@functools.lru_cache(maxsize=2)
def _strict_pool(files: Tuple[Tuple[str, int, int], ...]) -> Tuple[str, ...]:
    seen, pool = set(), []
    for entry in _fortune_entries(files):
        for sent in re.split(r"(?<=[.!?])\s+", entry):
            if 5 <= len(sent.split()) <= 20 and _SENTENCE.match(sent) and not _ABBREV.search(sent) \
                    and sent not in seen:
                seen.add(sent)
                pool.append(sent)
    return tuple(pool)


@functools.lru_cache(maxsize=2)
def _wide_pool(files: Tuple[Tuple[str, int, int], ...]) -> Tuple[str, ...]:
    seen = set(_strict_pool(files))
    pool = []
    for entry in _fortune_entries(files):
        for sent in _WIDE_SPLIT.split(entry):
            if sent not in seen and _wide_ok(sent):
                seen.add(sent)
                pool.append(sent)
    return tuple(pool)


def sentence_pool() -> List[str]:
    """Clean English sentences from fortunes in a fixed order: plain letters/punctuation, capital start, final
    ``.!?``, 5-20 words, no duplicates (the *strict* pool: the only source of speech)."""
    return list(_strict_pool(_fortune_files()))


def _wide_ok(sent: str) -> bool:
    """The wide (text-only) filter: 3-30 words, letters/digits/spaces and ``,;:'"()%$&-`` only, a capital or a digit
    first (after an opening quote or parenthesis), a final ``.!?`` (before a closing one), balanced parentheses and
    double quotes, no ``..``/``!!``/``---``, no abbreviation at the end, at least 70 % of the words with a letter and
    at most a third of them in capitals."""
    words = sent.split()
    if not WIDE_WORDS[0] <= len(words) <= WIDE_WORDS[1] or not _WIDE.match(sent) or _ABBREV.search(sent.rstrip("\"')")):
        return False
    if sent.count('"') % 2 or re.search(r"\.\.|[!?]{2}|---|''|\(\s*\)", sent):
        return False
    depth = 0
    for c in sent:
        depth += (c == "(") - (c == ")")
        if depth < 0:
            return False
    if depth:
        return False
    lettered = [w for w in words if re.search(r"[A-Za-z]", w)]
    shouted = [w for w in lettered if len(re.sub(r"[^A-Za-z]", "", w)) > 1 and w.upper() == w]
    return len(lettered) >= 0.7 * len(words) and len(shouted) * 3 <= len(words)


def wide_sentence_pool() -> List[str]:
    """The *wide* text-only pool, in a fixed order: sentences of the same fortunes files that :func:`_wide_ok` takes
    and the strict pool does not hold (nearly all fail its filter; about 2 % come from splitting also after a closing
    quote or parenthesis, which the strict pool's splitter does not), no duplicates. Never used for speech."""
    return list(_wide_pool(_fortune_files()))


def _lower_first(line: str) -> str:
    """Lower-case the first letter when it starts the line or follows only opening quotes/parentheses (Apertium
    passes capitalised unknown words through unmarked)."""
    i = len(line) - len(line.lstrip("\"'("))
    return line[:i] + line[i:i + 1].lower() + line[i + 1:]


def _spanish_case(src: str, out: str) -> str:
    out = re.sub(r"\s+([,.;:!?])", r"\1", " ".join(out.split()))
    if out:
        out = out[0].upper() + out[1:]
    if src.endswith("?") and not out.startswith("¿"):
        out = "¿" + out
    elif src.endswith("!") and not out.startswith("¡"):
        out = "¡" + out
    return out


def _spanish_wide(src: str, out: str) -> str:
    """Tidy one Apertium line of the wide pool: spaces collapsed, none before ``,.;:!?)`` or after ``(``, none inside
    a pair of double quotes at its ends, the first letter capitalised, ``¿``/``¡`` for a final ``?``/``!`` (inside
    the quotes when the whole sentence is one quotation, after a leading enumerator such as ``(2)``)."""
    out = re.sub(r"\s+([,.;:!?)])", r"\1", " ".join(out.split())).replace("( ", "(")
    parts = out.split('"')
    for k in range(1, len(parts), 2):  # parts[k] is inside the k-th pair of quotes
        parts[k] = parts[k].strip()
    out = '"'.join(parts)
    i = len(out) - len(out.lstrip("\"'("))
    out = out[:i] + out[i:i + 1].upper() + out[i + 1:]
    quoted = src.startswith('"') and src.endswith('"') and src.count('"') == 2 and out.startswith('"')
    mark = {"?": "¿", "!": "¡"}.get(src[-2:-1] if quoted else src[-1:])
    lead = 1 if quoted else len(re.match(r"(?:(?:\(\w{1,3}\)|\d{1,3}[.)]) )?", out).group(0))  # '"' or "(2) "
    if mark and out[lead:lead + 1] != mark:
        out = out[:lead] + mark + out[lead:]
    return out


def _apertium(lines: List[str]) -> List[str]:
    text = "".join(_lower_first(ln) + "\n" for ln in lines)
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
    text = "".join(_STREAM_SPECIAL.sub(r"\\\1", _lower_first(ln)) + "\n" for ln in pool)
    res = subprocess.run(["lt-proc", m.group(1)], input=text, capture_output=True, text=True)
    out = res.stdout.split("\n")
    if res.returncode != 0 or len(out) < len(pool):
        return pool
    return [ln for ln, ana in zip(pool, out) if "/*" not in ana]


def _cache_dir() -> Path:
    base = os.environ.get("SALIGN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "salign")
    return Path(base)


def _cached_translation(pool: List[str], name: str, key: str, nj: int, cache_dir: Optional[PathLike],
                        finish: Callable[[List[str], List[str]], List[Tuple[str, str]]],
                        log: Optional[Callable[[str], None]] = None) -> List[Tuple[str, str]]:
    """Translate ``pool`` in fixed-size chunks (deterministic for any ``nj``) after the known-words pre-filter, and
    turn it into pairs with ``finish``; cached as ``<cache>/<name>_<hash>.tsv``, the hash covering the pool, ``key``,
    the chunk size and the Apertium modes."""
    h = hashlib.sha1(("\n".join(pool) + f"\n{CHUNK}{key}").encode())
    for mode in sorted(Path("/usr/share/apertium/modes").glob("eng-spa*.mode")):
        h.update(mode.read_bytes())
    cache = Path(cache_dir) if cache_dir else _cache_dir()
    cache_file = cache / f"{name}_{h.hexdigest()[:16]}.tsv"
    if cache_file.is_file():
        lines = cache_file.read_text(encoding="utf-8").split("\n")[:-1]
        return [tuple(ln.split("\t")) for ln in lines]  # type: ignore[misc]
    start = time.time()
    known = _known_words_only(pool)
    if log is not None:
        log(f"gen_mini_mustc: translating {len(known)} of {len(pool)} sentences ({name}; once, then cached in "
            f"{cache})")
    chunks = [known[i:i + CHUNK] for i in range(0, len(known), CHUNK)]
    with ThreadPoolExecutor(max(1, nj)) as ex:
        spanish = [s for part in ex.map(_apertium, chunks) for s in part]
    pairs = finish(known, spanish)
    if log is not None:
        log(f"gen_mini_mustc: {len(pairs)} pairs kept ({name}), {time.time() - start:.1f} s")
    try:
        with atomic_write(cache_file) as f:
            f.writelines(f"{en}\t{es}\n" for en, es in pairs)
    except OSError:
        pass  # a read-only cache only costs time
    return pairs


def _finish_strict(pool: List[str], spanish: List[str]) -> List[Tuple[str, str]]:
    pairs = [(en, _spanish_case(en, es)) for en, es in zip(pool, spanish) if not re.search(r"[*#@]", es)]
    return [(en, es) for en, es in pairs if re.search(r"\w[.!?]$", es) and "\t" not in en + es]


def _finish_wide(pool: List[str], spanish: List[str]) -> List[Tuple[str, str]]:
    pairs = [(en, _spanish_wide(en, es)) for en, es in zip(pool, spanish) if not re.search(r"[*#@]", es)]
    return [(en, es) for en, es in pairs if re.search(r"[\w%$][.!?][\"')]?$", es) and es.count('"') % 2 == 0
            and "\t" not in en + es]


def translated_pool(nj: int = 2, cache_dir: Optional[PathLike] = None,
                    log: Optional[Callable[[str], None]] = None) -> List[Tuple[str, str]]:
    """English/Spanish pairs of the strict pool: the whole pool translated in fixed-size chunks (deterministic for
    any ``nj``), lines with unknown-word marks (``* # @``) dropped. Cached (``$SALIGN_CACHE``, default
    ``~/.cache/salign``)."""
    return _cached_translation(sentence_pool(), "mini_mustc_eng-spa", "", nj, cache_dir, _finish_strict, log)


def translated_wide_pool(nj: int = 2, cache_dir: Optional[PathLike] = None,
                         log: Optional[Callable[[str], None]] = None) -> List[Tuple[str, str]]:
    """English/Spanish pairs of the wide text-only pool (:func:`wide_sentence_pool`), translated and cached like
    :func:`translated_pool` in a cache file of its own; lines with unknown-word marks or unbalanced quotes dropped."""
    return _cached_translation(wide_sentence_pool(), "mini_mustc_eng-spa_wide", f"\nwide-{WIDE_FORMAT}", nj,
                               cache_dir, _finish_wide, log)


def _fmt(seconds: float) -> str:
    """Exact decimal form of a sample-aligned time (n/16000 has at most 7 decimals)."""
    text = f"{seconds:.7f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


VoiceLists = Tuple[Tuple[str, ...], Tuple[str, ...]]  # (flite voices, espeak-ng base voices)


def voice_lists(part: Optional[str]) -> VoiceLists:
    """The voices a talk is drawn from: ``part=None`` all of them (no held-out voices: ``n_tst_unseen 0``),
    ``"seen"`` all but the held-out ones (train, dev, tst-COMMON, tst-HE), ``"unseen"`` only the held-out ones
    (tst-UNSEEN). Each espeak-ng base voice takes every variant of :data:`ESPEAK_VARIANTS`."""
    if part is None:
        return FLITE_VOICES, ESPEAK_VOICES
    if part == "seen":
        return (tuple(v for v in FLITE_VOICES if v not in HELD_OUT_FLITE),
                tuple(v for v in ESPEAK_VOICES if v not in HELD_OUT_ESPEAK))
    if part == "unseen":
        return HELD_OUT_FLITE, HELD_OUT_ESPEAK
    raise ValueError(f"unknown voice part {part!r}")


def _voice(rng: random.Random, voices: VoiceLists = (FLITE_VOICES, ESPEAK_VOICES)) -> dict:
    """Per-talk voice: flite ~70% (more intelligible), espeak-ng otherwise; speed and pitch varied."""
    flite, espeak = voices
    if rng.random() < 0.7:
        return {"engine": "flite", "voice": rng.choice(flite), "stretch": round(rng.uniform(0.85, 1.15), 2),
                "cents": rng.randrange(-200, 201, 25), "gain": round(rng.uniform(0.5, 0.9), 2)}
    return {"engine": "espeak", "voice": rng.choice(espeak) + rng.choice(ESPEAK_VARIANTS),
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


TalkJob = Tuple[int, List[str], int, Path, VoiceLists]  # talk number, sentences, seed, wav dir, voices to draw from


def _make_talk(job: TalkJob) -> Tuple[str, List[Tuple[float, float]], dict]:
    """Synthesise one talk wav; return its file name, (offset, duration) per utterance and its voice."""
    talk_no, sentences, seed, wav_dir, voices = job
    rng = random.Random(f"{seed}-talk-{talk_no}")
    voice = _voice(rng, voices)
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
    return name, times, voice


def _voices_tsv(rows: Sequence[Tuple[str, str, int, dict]]) -> str:
    """``voices.tsv``: a header, then split, wav, speaker_id, engine, voice and its parameters (``key=value``,
    space-separated) per talk, in talk order."""
    lines = ["split\twav\tspeaker_id\tengine\tvoice\tparameters\n"]
    for split, wav, talk_no, voice in rows:
        params = " ".join(f"{k}={v}" for k, v in voice.items() if k not in ("engine", "voice"))
        lines.append(f"{split}\t{wav}\tspk.{talk_no}\t{voice['engine']}\t{voice['voice']}\t{params}\n")
    return "".join(lines)


def _norm_key(sentence: str) -> str:
    """A sentence's identity for deduplication: lower case, letters and digits only."""
    return " ".join(re.findall(r"[a-z0-9]+", sentence.lower()))


def _mt_extra(opts: MiniMustcOptions, left: List[Tuple[str, str]], spoken: Sequence[str], nj: int,
              cache_dir: Optional[PathLike], log: Callable[[str], None]) -> Tuple[List[Tuple[str, str]], int]:
    """The text-only MT pairs and how many of them come from the wide pool. ``n_mt_extra >= 0``: the first N strict
    pairs left over (as always). ``-1``: every strict pair left over, then the wide pool (shuffled by the seed), each
    English sentence once and none equal to a spoken one up to case and punctuation (:func:`_norm_key`)."""
    if opts.n_mt_extra >= 0:
        return left[:opts.n_mt_extra], 0
    wide = translated_wide_pool(nj, cache_dir, log)
    random.Random(f"{opts.seed}-wide").shuffle(wide)
    taken = {_norm_key(en) for en in spoken}
    extra, n_wide = [], 0
    for i, (en, es) in enumerate(left + wide):
        key = _norm_key(en)
        if key not in taken:
            taken.add(key)
            extra.append((en, es))
            n_wide += i >= len(left)
    return extra, n_wide


def generate(out: PathLike, opts: MiniMustcOptions, nj: int = 2, log: Callable[[str], None] = print,
             cache_dir: Optional[PathLike] = None) -> Path:
    """Build ``<out>/en-<tgt>`` (see module doc) atomically; return its path. An identical corpus is reused."""
    start = time.time()
    sizes = opts.sizes()
    if min(sizes[s] for s in SPLITS) < 1 or opts.utts_per_talk < 1 or nj < 1:
        raise InputError(f"sizes, --utts_per_talk and --nj must be >= 1 (got {sizes}, {opts.utts_per_talk}, {nj})",
                         fix="e.g. --n_train 240 --n_dev 40 --n_tst 40")
    if opts.n_tst_unseen < 0 or opts.n_mt_extra < -1:
        raise InputError(f"--n_tst_unseen must be >= 0 and --n_mt_extra >= -1 (got {opts.n_tst_unseen}, "
                         f"{opts.n_mt_extra})", fix="e.g. --n_tst_unseen 40 --n_mt_extra -1")
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
    pairs = translated_pool(nj, cache_dir, log)
    total = sum(sizes.values())
    if total > len(pairs):
        raise InputError(f"asked for {total} segments but only {len(pairs)} sentence pairs exist",
                         fix=f"reduce --n_train/--n_dev/--n_tst/--n_tst_unseen to {len(pairs)} in total")
    order = list(range(len(pairs)))
    random.Random(opts.seed).shuffle(order)
    held_out = opts.n_tst_unseen > 0
    with atomic_dir(pair_dir) as tmp:
        jobs: List[TalkJob] = []
        layout, pos, talk_no = [], 0, 0
        for split in opts.splits():
            (tmp / "data" / split / "wav").mkdir(parents=True)
            chosen = [pairs[i] for i in order[pos:pos + sizes[split]]]
            pos += sizes[split]
            n_talks = math.ceil(len(chosen) / opts.utts_per_talk)
            voices = voice_lists(("unseen" if split == UNSEEN_SPLIT else "seen") if held_out else None)
            for t in range(n_talks):
                talk_no += 1
                part = chosen[t * len(chosen) // n_talks:(t + 1) * len(chosen) // n_talks]
                jobs.append((talk_no, [en for en, _ in part], opts.seed, tmp / "data" / split / "wav", voices))
                layout.append((split, talk_no, part))
        progress = Progress(total, "gen_mini_mustc: speech synthesis", log=log)  # counts and ETA, every 10 %
        results = []
        with ThreadPoolExecutor(nj) as ex:
            for job, result in zip(jobs, ex.map(_make_talk, jobs)):
                results.append(result)
                progress.update(len(job[1]))
        seconds = 0.0
        for split in opts.splits():
            txt = tmp / "data" / split / "txt"
            txt.mkdir()
            rows = [(talk_no, part, res) for (sp, talk_no, part), res in zip(layout, results) if sp == split]
            with open(txt / f"{split}.yaml", "w", encoding="utf-8") as fy, \
                    open(txt / f"{split}.en", "w", encoding="utf-8") as fe, \
                    open(txt / f"{split}.{opts.tgt}", "w", encoding="utf-8") as ft:
                for talk_no, part, (name, times, _) in rows:
                    for (en, es), (offset, dur) in zip(part, times):
                        fy.write(f"- {{duration: {_fmt(dur)}, offset: {_fmt(offset)}, rw: {len(en.split())}, "
                                 f"speaker_id: spk.{talk_no}, wav: {name}}}\n")
                        fe.write(en + "\n")
                        ft.write(es + "\n")
                        seconds += dur
        if held_out:  # the split is explicit: every talk's voice (the held-out list is in the stamp)
            (tmp / VOICES_TSV).write_text(_voices_tsv([(sp, res[0], no, res[2])
                                                       for (sp, no, _), res in zip(layout, results)]),
                                          encoding="utf-8")
        spoken = [pairs[i][0] for i in order[:pos]]
        extra, n_wide = _mt_extra(opts, [pairs[i] for i in order[pos:]], spoken, nj, cache_dir, log)
        if extra:
            (tmp / "mt-extra").mkdir()
            for lang, idx in (("en", 0), (opts.tgt, 1)):
                (tmp / "mt-extra" / f"mt-extra.{lang}").write_text("".join(p[idx] + "\n" for p in extra),
                                                                   encoding="utf-8")
        Stamp(tmp / STAMP, [], opts.as_dict()).write()  # no inputs: valid at the final path too
    wide = f" ({n_wide} of them from the wide pool)" if opts.n_mt_extra < 0 else ""
    unseen = (f"; {UNSEEN_SPLIT} spoken by the held-out voices {', '.join(HELD_OUT_FLITE + HELD_OUT_ESPEAK)} only"
              if held_out else "")
    log(f"gen_mini_mustc: {total} segments ({', '.join(f'{k} {v}' for k, v in sizes.items())}), "
        f"{seconds / 3600:.2f} h of speech, {len(extra)} text-only MT pairs{wide}{unseen}, "
        f"{time.time() - start:.1f} s -> {pair_dir}")
    return pair_dir
