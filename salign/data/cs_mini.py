"""Generate a small Spanish-English code-switch (CS) speech translation corpus: CS speech -> English text (Fisher's
direction), plus the monolingual sets of the early training stages. The rules are in ``docs/cs_corpus.md``.

Text: English sentences of the mini MuST-C pool cut into phrase chunks and translated chunk by chunk by Apertium
(:mod:`salign.data.cs_text`). A CS utterance keeps 1..``en_max_share``·n of its n chunks (at least one, at most
n-1) in English and says the others in Spanish, in the English order; an ``en`` utterance says every chunk in
English (English ASR), an ``es`` one every chunk in Spanish (Spanish->English ST). Speech: every chunk synthesised
on its own by a voice of its language (:func:`salign.data.mini_mustc._synth`: flite or espeak-ng English voices,
espeak-ng ``es``/``es-419`` voices), trimmed, joined with pauses of ``pause_min..pause_max`` seconds (leading and
trailing silence of the same length; the silences carry a faint noise floor, the chunks are the TTS samples
unchanged), 16 kHz mono 16-bit. Voice timbres (each flite voice, each espeak-ng variant) are split by seed into
training timbres (train/dev sets) and held-out timbres (test sets only).

Output ``<out>/<set>/`` for ``cs_{train,dev,test}``, ``en_{train,dev,test}``, ``es_{train,dev,test}`` and
``mix_test`` (cs_test + es_test): Kaldi files ``wav.scp`` (absolute paths to ``<set>/wav/<utt>.wav``), ``text``
(English target), ``text.src`` (source words as spoken), ``utt2lang`` (cs|en|es), ``spans``
(``utt lang start end [lang start end ...]``, seconds, sample-exact), ``utt2spk``, ``spk2utt``, ``utt2dur``, and
``chunks.jsonl`` (per utterance: every chunk's language, span, text and voice); ``<out>/metadata.json`` (options,
voice split, counts, durations) and the stamp ``<out>/.cs_mini.json``. Same options -> byte-identical files (for
any ``nj``; ``wav.scp`` holds the output path).
"""
from __future__ import annotations

import json
import math
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from salign.data.cs_text import chunked_pool
from salign.data.datadir import spk2utt_from_utt2spk
from salign.data.kaldi import read_table, write_table
from salign.data.mini_mustc import ESPEAK_VARIANTS, ESPEAK_VOICES, FLITE_VOICES, SAMPLE_RATE, _fmt, _synth, check_tools
from salign.utils.io import InputError, PathLike, atomic_dir, atomic_write
from salign.utils.stamp import Stamp

__all__ = ["SETS", "LANGS", "CsMiniOptions", "timbres", "voice_split", "synth_chunk", "to_pcm", "read_spans",
           "lang_frames", "write_lang_frames", "generate"]

FORMAT = 1  # bump when the output for given options changes
STAMP = ".cs_mini.json"
KINDS = ("cs", "es", "en")
SETS = tuple(f"{k}_{s}" for s in ("train", "dev", "test") for k in KINDS)
MIX = "mix_test"
LANGS = ("en", "es")  # language ids for frame labels: positions here (= the MoE projector's default groups)
ES_VOICES = ("es", "es-419")
TRIM_MARGIN = 0.02  # seconds kept around the trimmed speech


@dataclass(frozen=True)
class CsMiniOptions:
    """Everything that determines the corpus (``nj`` does not)."""

    n_cs_train: int = 300
    n_mono_train: int = 300  # each of en_train and es_train
    n_dev: int = 30  # each dev set
    n_test: int = 50  # each test set
    seed: int = 1
    pause_min: float = 0.1
    pause_max: float = 0.3
    min_words: int = 2
    max_words: int = 6
    en_max_share: float = 0.5
    p_flite: float = 0.5
    same_voice: float = 0.5
    n_test_flite: int = 1
    n_test_variants: int = 2
    noise_db: float = -60.0
    trim_db: float = 40.0

    def sizes(self) -> Dict[str, int]:
        """Utterances per generated set (``mix_test`` is cs_test + es_test)."""
        per = {"train": (self.n_cs_train, self.n_mono_train), "dev": (self.n_dev,) * 2, "test": (self.n_test,) * 2}
        return {s: per[s.split("_")[1]][0 if s.startswith("cs") else 1] for s in SETS}

    def as_dict(self) -> dict:
        """Stamp and metadata content."""
        return {"tool": "salign.bin.gen_cs_mini", "format": FORMAT, **asdict(self)}

    def check(self, nj: int = 1) -> None:
        """One-line :class:`InputError` for the first bad value."""
        bad = [(k, v) for k, v in self.sizes().items() if v < 1]
        rules = [(not bad and nj >= 1, f"sizes and --nj must be >= 1 (got {bad or nj})",
                  "e.g. --n_cs_train 300 --n_mono_train 300 --n_dev 30 --n_test 50"),
                 (0 <= self.pause_min <= self.pause_max, f"need 0 <= --pause_min ({self.pause_min}) <= --pause_max "
                  f"({self.pause_max})", "e.g. --pause_min 0.1 --pause_max 0.3"),
                 (1 <= self.min_words <= self.max_words, f"need 1 <= --min_words ({self.min_words}) <= --max_words "
                  f"({self.max_words})", "e.g. --min_words 2 --max_words 6"),
                 (0 < self.en_max_share <= 1, f"--en_max_share must be in (0, 1], got {self.en_max_share}", None),
                 (0 <= self.p_flite <= 1 and 0 <= self.same_voice <= 1,
                  f"--p_flite and --same_voice are probabilities, got {self.p_flite}, {self.same_voice}", None),
                 (0 <= self.n_test_flite < len(FLITE_VOICES), f"--n_test_flite must be in 0..{len(FLITE_VOICES) - 1}"
                  f" (one flite voice stays for training), got {self.n_test_flite}", None),
                 (1 <= self.n_test_variants < len(ESPEAK_VARIANTS), f"--n_test_variants must be in "
                  f"1..{len(ESPEAK_VARIANTS) - 1} (Spanish test voices need one), got {self.n_test_variants}", None),
                 (self.trim_db >= 0, f"--trim_db must be >= 0 (0: no trimming), got {self.trim_db}", None)]
        for ok, msg, fix in rules:
            if not ok:
                raise InputError(msg, fix=fix or "see python -m salign.bin.gen_cs_mini --help")


# ------------------------------------------------------------------------------------------------ voices
def timbres() -> List[str]:
    """Every voice timbre: ``flite-<voice>`` and ``espeak-<variant>`` (``espeak-base`` without a variant)."""
    return [f"flite-{v}" for v in FLITE_VOICES] + [f"espeak-{v.lstrip('+') or 'base'}" for v in ESPEAK_VARIANTS]


def voice_split(opts: CsMiniOptions) -> Dict[str, List[str]]:
    """Training and held-out (test) timbres, chosen by seed."""
    rng = random.Random(f"{opts.seed}-voices")
    flite = [t for t in timbres() if t.startswith("flite")]
    espeak = [t for t in timbres() if t.startswith("espeak")]
    test = sorted(rng.sample(flite, opts.n_test_flite) + rng.sample(espeak, opts.n_test_variants))
    return {"train": [t for t in timbres() if t not in test], "test": test}


def _variant(timbre: str) -> str:
    name = timbre.split("-", 1)[1]
    return "" if name == "base" else "+" + name


def _espeak(rng: random.Random, accent: str, timbre: str) -> dict:
    return {"engine": "espeak", "voice": accent + _variant(timbre), "wpm": rng.randrange(145, 186, 5),
            "pitch": rng.randrange(30, 71, 5), "cents": 0, "gain": round(rng.uniform(0.5, 0.9), 2), "timbre": timbre}


def _en_voice(rng: random.Random, allowed: Sequence[str], p_flite: float) -> dict:
    flite = [t for t in allowed if t.startswith("flite")]
    espeak = [t for t in allowed if t.startswith("espeak")]
    if flite and (rng.random() < p_flite or not espeak):
        t = rng.choice(flite)
        return {"engine": "flite", "voice": t.split("-", 1)[1], "stretch": round(rng.uniform(0.85, 1.15), 2),
                "cents": rng.randrange(-200, 201, 25), "gain": round(rng.uniform(0.5, 0.9), 2), "timbre": t}
    return _espeak(rng, rng.choice(ESPEAK_VOICES), rng.choice(espeak))


def _voices(rng: random.Random, kind: str, allowed: Sequence[str], opts: CsMiniOptions) -> Dict[str, dict]:
    """The voice of each language of one utterance; a CS utterance's English voice is, with probability
    ``same_voice``, the Spanish voice's espeak-ng variant, speed and pitch with an English accent."""
    out: Dict[str, dict] = {}
    if kind in ("cs", "es"):
        out["es"] = _espeak(rng, rng.choice(ES_VOICES), rng.choice([t for t in allowed if t.startswith("espeak")]))
    if kind == "en" or (kind == "cs" and rng.random() >= opts.same_voice):
        out["en"] = _en_voice(rng, allowed, opts.p_flite)
    elif kind == "cs":
        out["en"] = dict(out["es"], voice=rng.choice(ESPEAK_VOICES) + _variant(out["es"]["timbre"]))
    return out


# ------------------------------------------------------------------------------------------------ audio
def synth_chunk(text: str, voice: dict, workdir: PathLike, trim_db: float = 40.0, idx: int = 0) -> np.ndarray:
    """One chunk's audio (float, 16 kHz) as it is put into the utterance: :func:`mini_mustc._synth`, then the
    samples below peak - ``trim_db`` dB at both ends cut off (``TRIM_MARGIN`` seconds kept; 0 dB: no trimming)."""
    audio = _synth(text, voice, Path(workdir), idx)
    if trim_db <= 0:
        return audio
    mag = np.abs(audio)
    loud = np.flatnonzero(mag >= mag.max() * 10 ** (-trim_db / 20))
    margin = int(TRIM_MARGIN * SAMPLE_RATE)
    return audio[max(0, loud[0] - margin): loud[-1] + 1 + margin] if len(loud) else audio


def to_pcm(audio: np.ndarray) -> np.ndarray:
    """Float audio -> the 16-bit samples written to the wav."""
    return np.clip(np.round(audio * 32767), -32768, 32767).astype("<i2")


def _make_utt(job: Tuple[str, Path, List[Tuple[str, str, dict]], float, float, float, float, str]) -> dict:
    """Synthesise one utterance; return its chunk records (lang, start, end, text, voice) and duration."""
    utt, wav_dir, chunks, pmin, pmax, noise_db, trim_db, seed_key = job
    rng = random.Random(f"{seed_key}-audio")
    noise = np.random.default_rng(list(seed_key.encode()))
    level = 10 ** (noise_db / 20)

    def gap() -> np.ndarray:
        n = int(round(SAMPLE_RATE * rng.uniform(pmin, pmax)))
        return to_pcm(noise.standard_normal(n) * level)

    pieces, records, pos = [], [], 0
    with tempfile.TemporaryDirectory(dir=wav_dir) as work:
        for i, (lang, text, voice) in enumerate(chunks):
            g = gap()
            speech = to_pcm(synth_chunk(text, voice, work, trim_db, i))
            pieces += [g, speech]
            start = pos + len(g)
            pos = start + len(speech)
            records.append({"lang": lang, "start": _fmt(start / SAMPLE_RATE), "end": _fmt(pos / SAMPLE_RATE),
                            "text": text, "voice": voice})
    pieces.append(gap())
    audio = np.concatenate(pieces)
    import soundfile

    soundfile.write(str(wav_dir / f"{utt}.wav"), audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return {"utt": utt, "chunks": records, "duration": _fmt(len(audio) / SAMPLE_RATE)}


# ------------------------------------------------------------------------------------------------ labels
def read_spans(path: PathLike, langs: Sequence[str] = LANGS) -> Dict[str, List[Tuple[float, float, int]]]:
    """A ``spans`` file -> ``utt -> [(start_s, end_s, lang_id)]`` with ``lang_id`` the position in ``langs``, as
    :func:`salign.llm.moe.frame_labels_from_spans` takes them."""
    out: Dict[str, List[Tuple[float, float, int]]] = {}
    for lineno, (utt, value) in enumerate(read_table(path).items(), 1):
        f = value.split()
        if not f or len(f) % 3 or any(lang not in langs for lang in f[::3]):
            raise InputError(f"'{utt}': need 'lang start end' triples with lang in {list(langs)}", path, lineno,
                             fix="regenerate the corpus with salign.bin.gen_cs_mini")
        out[utt] = [(float(f[i + 1]), float(f[i + 2]), langs.index(f[i])) for i in range(0, len(f), 3)]
    return out


def lang_frames(spans: Sequence[Tuple[float, float, int]], duration: float, frame_shift: float) -> List[int]:
    """One language id per frame (``ceil(duration / frame_shift)`` frames, -1 in pauses) of one utterance."""
    from salign.llm.moe import frame_labels_from_spans

    return frame_labels_from_spans(spans, math.ceil(duration / frame_shift - 1e-9), frame_shift).tolist()


def write_lang_frames(data: PathLike, frame_shift: float, out: Optional[PathLike] = None,
                      langs: Sequence[str] = LANGS) -> Path:
    """Write ``<data>/lang_frames`` (``text_int``: ``utt id id ...``) from ``spans`` and ``utt2dur`` for the
    projector's frame shift in seconds (encoder frame period × stack); return its path."""
    data = Path(data)
    spans, durs = read_spans(data / "spans", langs), read_table(data / "utt2dur")
    path = Path(out) if out else data / "lang_frames"
    write_table(path, {u: " ".join(map(str, lang_frames(s, float(durs[u]), frame_shift))) for u, s in spans.items()})
    return path


# ------------------------------------------------------------------------------------------------ corpus
def _plan(opts: CsMiniOptions, pool: list, split: Dict[str, List[str]]) -> List[Tuple[str, int, tuple, list]]:
    """(set, index, English chunks, [(lang, text, voice)]) per utterance: test sets take their sentences first, so
    training sizes never change a test set."""
    order = sorted(SETS, key=lambda s: ("test", "dev", "train").index(s.split("_")[1]))
    idx = list(range(len(pool)))
    random.Random(opts.seed).shuffle(idx)
    plan, pos = [], 0
    for name in order:
        kind, allowed = name.split("_")[0], split["test" if name.endswith("test") else "train"]
        for i in range(opts.sizes()[name]):
            en, es = pool[idx[pos]]
            pos += 1
            rng = random.Random(f"{opts.seed}-{name}-{i}")
            langs = [kind] * len(en)
            if kind == "cs":
                k = rng.randint(1, min(len(en) - 1, max(1, round(len(en) * opts.en_max_share))))
                keep = set(rng.sample(range(len(en)), k))
                langs = ["en" if c in keep else "es" for c in range(len(en))]
            voices = _voices(rng, kind, allowed, opts)
            plan.append((name, i, en, [(lg, en[c] if lg == "en" else es[c], voices[lg])
                                       for c, lg in enumerate(langs)]))
    return plan


def _speaker(chunks: list) -> str:
    return ".".join(sorted({v["timbre"] for _, _, v in chunks}))


def _check_out(out: Path) -> None:
    """One-line errors when ``out`` cannot be written or is a directory this tool did not build."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as exc:
        raise InputError(f"cannot write the output there ({exc.strerror or exc})", out,
                         fix="choose a writable --out") from None
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", out, fix="choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / STAMP).exists():
        raise InputError(f"exists but was not built by gen_cs_mini (no {STAMP})", out,
                         fix="remove it or choose another --out")


def generate(out: PathLike, opts: CsMiniOptions, nj: int = 2, log: Callable[[str], None] = print,
             cache_dir: Optional[PathLike] = None) -> Path:
    """Build the corpus at ``out`` (see the module doc) atomically; return its path. An identical one is reused."""
    start = time.time()
    opts.check(nj)
    out = Path(out).absolute()
    _check_out(out)
    stamp = Stamp(out / STAMP, [], opts.as_dict())
    reason = stamp.reason()
    if reason is None:
        log(f"gen_cs_mini: {out} already complete with the same options; nothing to do")
        return out
    if stamp.path.exists():
        log(f"gen_cs_mini: {out} was built with other options ({reason}); rebuilding")
    check_tools("es")
    pool = [p for p in chunked_pool(nj, opts.min_words, opts.max_words, cache_dir) if len(p[0]) >= 2]
    sizes = opts.sizes()
    if sum(sizes.values()) > len(pool):
        raise InputError(f"asked for {sum(sizes.values())} utterances but only {len(pool)} chunked sentences exist",
                         fix=f"reduce the sizes to {len(pool)} in total")
    split = voice_split(opts)
    plan = _plan(opts, pool, split)
    with atomic_dir(out) as tmp:
        jobs = []
        for name, i, _, chunks in plan:
            (tmp / name / "wav").mkdir(parents=True, exist_ok=True)
            jobs.append((f"{_speaker(chunks)}-{name}-{i:05d}", tmp / name / "wav", chunks, opts.pause_min,
                         opts.pause_max, opts.noise_db, opts.trim_db, f"{opts.seed}-{name}-{i}"))
        results, step = [], max(1, len(jobs) // 10)
        with ThreadPoolExecutor(nj) as ex:
            for n, res in enumerate(ex.map(_make_utt, jobs), 1):
                results.append(res)
                if n % step == 0 or n == len(jobs):
                    log(f"gen_cs_mini: {n}/{len(jobs)} utterances synthesised ({time.time() - start:.0f} s)")
        meta = _write_sets(tmp, out, plan, results)
        meta = {"options": opts.as_dict(), "langs": list(LANGS), "voices": split, **meta}
        with atomic_write(tmp / "metadata.json") as f:
            f.write(json.dumps(meta, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        Stamp(tmp / STAMP, [], opts.as_dict()).write()
    hours = sum(s["seconds"] for k, s in meta["sets"].items() if k != MIX) / 3600
    log(f"gen_cs_mini: {len(jobs)} utterances ({', '.join(f'{k} {v}' for k, v in sizes.items())}; {MIX} "
        f"{meta['sets'][MIX]['utterances']}), {hours:.2f} h of speech, {time.time() - start:.1f} s -> {out}")
    return out


def _write_sets(tmp: Path, out: Path, plan: list, results: List[dict]) -> dict:
    """Write every set's Kaldi files and ``chunks.jsonl``; return the metadata of the sets."""
    rows: Dict[str, list] = {}
    for (name, _, en, _), res in zip(plan, results):
        rows.setdefault(name, []).append((en, res))
    rows[MIX] = rows["cs_test"] + rows["es_test"]
    sets = {}
    for name, items in rows.items():
        d = tmp / name
        d.mkdir(exist_ok=True)
        tables: Dict[str, Dict[str, str]] = {k: {} for k in ("wav.scp", "text", "text.src", "utt2lang", "spans",
                                                               "utt2spk", "utt2dur")}
        langs = {lg: 0 for lg in LANGS}
        for en, res in items:
            u, ch = res["utt"], res["chunks"]
            home = name if name != MIX else ("cs_test" if u.split("-")[-2] == "cs_test" else "es_test")
            kinds = {c["lang"] for c in ch}
            tables["wav.scp"][u] = str(out / home / "wav" / f"{u}.wav")
            tables["text"][u] = " ".join(en)
            tables["text.src"][u] = " ".join(c["text"] for c in ch)
            tables["utt2lang"][u] = "cs" if len(kinds) > 1 else kinds.pop()
            tables["spans"][u] = " ".join(f"{c['lang']} {c['start']} {c['end']}" for c in ch)
            tables["utt2spk"][u] = u.rsplit("-", 2)[0]
            tables["utt2dur"][u] = res["duration"]
            for c in ch:
                langs[c["lang"]] += 1
        for fname, table in tables.items():
            write_table(d / fname, table)
        write_table(d / "spk2utt", spk2utt_from_utt2spk(tables["utt2spk"]))
        with atomic_write(d / "chunks.jsonl") as f:
            for _, res in sorted(items, key=lambda r: r[1]["utt"]):
                f.write(json.dumps(res, ensure_ascii=False, sort_keys=True) + "\n")
        sets[name] = {"utterances": len(items), "seconds": round(sum(float(r["duration"]) for _, r in items), 3),
                      "chunks": langs, "timbres": sorted({t for u in tables["utt2spk"].values()
                                                          for t in u.split(".")})}
    return {"sets": sets}
