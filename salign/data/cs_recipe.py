"""Data side of the code-switch recipe (``egs/cs_mini``): driver data dirs from the corpus, and per-stage lists.

:func:`prepare` turns a code-switch corpus (``python -m salign.bin.gen_cs_mini``, ``docs/cs_corpus.md``) into the
Kaldi data dirs the shared driver's feature, filtering, token and shape stages read (``egs/TEMPLATE/st.sh`` stages
3-10, with ``--src_lang cs --tgt_lang en``)::

    data/train    cs_train + en_train + es_train      data/dev   cs_dev + en_dev + es_dev
    data/cs_test, data/en_test, data/es_test          (mix_test = cs_test + es_test: scored from their decodes)

each with ``wav.scp``, ``text.<src>`` (the source as spoken: English, Spanish or code-switched), ``text.<tgt>`` (the
English target), ``utt2spk``, ``spk2utt``, ``utt2dur``, ``utt2lang`` (cs|en|es), ``utt2set`` (the corpus set),
``spans``, ``lang`` (``text_int``: the utterance's language id, -1 for code-switched ones) and ``lang_frames``
(``text_int``: one id per stacked projector frame of ``frame_shift`` seconds, -1 in pauses). Ids are positions in
``langs`` (the MoE projector's ``groups``).

:func:`write_lists` cuts the driver's shape files (``dump/fbank/stats/{train,dev}``) into the training stages' lists: an
ESPnet training iterates the keys of its first shape file, so a list is just its three shape files
(``speech_shape``, ``text_shape``, ``src_text_shape``) restricted to some keys; the data files stay the full
``dump/fbank/filtered/{train,dev}`` ones. Lists (``<out>/<name>/``):

* ``asr`` / ``asr_dev``: en + es (stage 1, monolingual ASR); ``st`` / ``st_dev``: es (stage 2, monolingual ST);
  ``cs`` / ``cs_dev``: code-switched (stage 4 and the single-stage row);
* ``replay1``, ``replay2``, ...: stage 3's sub-stages, ``cs`` plus earlier-stage (en + es) utterances making up the
  share ``r_i`` of the list (``replay`` ratios, e.g. 0.5 0.25 0.1: a decaying data-mixing ratio). The replayed
  utterances of a later sub-stage are a prefix of an earlier one's (one seeded shuffle): the lists shrink.

:func:`derive_config` writes an ablation's config: a stage config with some top-level keys replaced (ESPnet's
``--projector_conf`` on the command line can only add keys to the config's dict, never drop the MoE's).
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import yaml

from salign.data.cs_mini import LANGS, write_lang_frames
from salign.data.kaldi import read_table, write_table
from salign.utils.io import InputError, PathLike, atomic_dir, atomic_write

#: driver data dir -> the corpus sets it joins
GROUPS: Dict[str, Sequence[str]] = {"train": ("cs_train", "en_train", "es_train"),
                                    "dev": ("cs_dev", "en_dev", "es_dev"),
                                    "cs_test": ("cs_test",), "en_test": ("en_test",), "es_test": ("es_test",)}
SHAPES = ("speech_shape", "text_shape", "src_text_shape")
CORPUS_FILES = ("wav.scp", "text", "text.src", "utt2spk", "utt2dur", "utt2lang", "spans")


def prepare(corpus: PathLike, out: PathLike, frame_shift: float, src: str = "cs", tgt: str = "en",
            langs: Sequence[str] = LANGS) -> Dict[str, int]:
    """Write ``out/<dir>`` for every dir of :data:`GROUPS` from ``corpus``; return the utterances per dir."""
    corpus, out = Path(corpus), Path(out)
    if not (corpus / "metadata.json").is_file():
        raise InputError("not a code-switch corpus (no metadata.json)", corpus,
                         fix="run stage 0 (python -m salign.bin.gen_cs_mini --out DIR) first")
    if frame_shift <= 0:
        raise InputError(f"--frame_shift must be > 0 seconds, got {frame_shift}",
                         fix="the projector's frame period: encoder frame period x stack, e.g. 0.08")
    if src == tgt:
        raise InputError(f"--src and --tgt must differ (they name the text files), got {src}",
                         fix="e.g. --src cs --tgt en")
    counts: Dict[str, int] = {}
    for name, sets in GROUPS.items():
        tables: Dict[str, Dict[str, str]] = {f: {} for f in CORPUS_FILES}
        origin: Dict[str, str] = {}
        for s in sets:
            d = corpus / s
            for f in CORPUS_FILES:
                tables[f].update(read_table(d / f, fix="regenerate the corpus (stage 0)"))
            origin.update({u: s for u in read_table(d / "wav.scp")})
        keys = set(tables["wav.scp"])
        for f, table in tables.items():
            if set(table) != keys:
                raise InputError(f"{name}: {f} and wav.scp list different utterances", corpus,
                                 fix="regenerate the corpus (stage 0)")
        with atomic_dir(out / name) as tmp:
            files = {"wav.scp": tables["wav.scp"], f"text.{src}": tables["text.src"], f"text.{tgt}": tables["text"],
                     "utt2spk": tables["utt2spk"], "utt2dur": tables["utt2dur"], "utt2lang": tables["utt2lang"],
                     "spans": tables["spans"], "utt2set": origin,
                     "lang": {u: str(langs.index(v)) if v in langs else "-1" for u, v in tables["utt2lang"].items()}}
            for f, table in files.items():
                write_table(tmp / f, table)
            spk: Dict[str, List[str]] = {}
            for u, s in sorted(tables["utt2spk"].items()):
                spk.setdefault(s, []).append(u)
            write_table(tmp / "spk2utt", {s: " ".join(us) for s, us in spk.items()})
            write_lang_frames(tmp, frame_shift, langs=langs)
        counts[name] = len(keys)
    return counts


def replay_sizes(n_cs: int, n_replay: int, ratios: Sequence[float]) -> List[int]:
    """Replayed utterances per sub-stage: ``round(r / (1 - r) · n_cs)`` (so they are the share r of the list), at
    most ``n_replay``; ratios must be in [0, 1) and not increase (a decaying mixing ratio)."""
    if not ratios:
        raise InputError("no replay ratio given", fix="e.g. --replay '0.5 0.25 0.1'")
    for i, r in enumerate(ratios):
        if not 0 <= r < 1:
            raise InputError(f"replay ratio {r} is not in [0, 1)", fix="e.g. --replay '0.5 0.25 0.1'")
        if i and r > ratios[i - 1]:
            raise InputError(f"replay ratios must not increase (a decaying mixing ratio), got {list(ratios)}",
                             fix="e.g. --replay '0.5 0.25 0.1'")
    return [min(n_replay, round(r / (1 - r) * n_cs)) for r in ratios]


def _subset(stats: Path, keys: Sequence[str], out: Path) -> None:
    """The shape files of ``stats`` restricted to ``keys`` (in their order) into ``out``."""
    with atomic_dir(out) as tmp:
        for name in SHAPES:
            table = read_table(stats / name, fix="run stage 10 (shape files) first")
            with open(tmp / name, "w", encoding="utf-8") as f:
                f.writelines(f"{k} {table[k]}\n" for k in keys)


def write_lists(data: PathLike, stats: PathLike, out: PathLike, replay: Sequence[float], seed: int = 1
                ) -> Dict[str, int]:
    """Write the stage lists (module docstring) from ``data/{train,dev}/utt2set`` and the shape files
    ``stats/{train,dev}``; also ``out/lists.json`` (sizes and replay ratios). Return the utterances per list."""
    data, stats, out = Path(data), Path(stats), Path(out)
    kinds = {"asr": ("en", "es"), "st": ("es",), "cs": ("cs",)}
    sizes: Dict[str, int] = {}
    for split, suffix in (("train", ""), ("dev", "_dev")):
        origin = read_table(data / split / "utt2set", fix="run stage 1 (data preparation) first")
        have = list(read_table(stats / split / SHAPES[0], fix="run stage 10 (shape files) first"))
        by_lang: Dict[str, List[str]] = {}
        for k in have:  # the utterances that passed stage 4's filter
            by_lang.setdefault(origin[k].split("_")[0], []).append(k)
        for name, langs in kinds.items():
            keys = sorted(k for lang in langs for k in by_lang.get(lang, []))
            if not keys:
                raise InputError(f"list {name}{suffix}: no utterance of {'/'.join(langs)} left after filtering",
                                 stats / split, fix="a larger corpus, or looser --min_frames/--max_frames")
            _subset(stats / split, keys, out / f"{name}{suffix}")
            sizes[f"{name}{suffix}"] = len(keys)
        if split == "train":
            cs = sorted(by_lang.get("cs", []))
            mono = sorted(by_lang.get("en", []) + by_lang.get("es", []))
            random.Random(seed).shuffle(mono)
            for i, n in enumerate(replay_sizes(len(cs), len(mono), replay), 1):
                _subset(stats / split, sorted(cs + mono[:n]), out / f"replay{i}")
                sizes[f"replay{i}"] = len(cs) + n
    info = {"sizes": sizes, "replay_ratios": list(replay),
            "replay_share": {f"replay{i}": round((sizes[f"replay{i}"] - sizes["cs"]) / sizes[f"replay{i}"], 4)
                             for i in range(1, len(replay) + 1)}, "seed": seed}
    with atomic_write(out / "lists.json") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    return sizes


def derive_config(src: PathLike, out: PathLike, overrides: Mapping[str, Any]) -> None:
    """``src`` (a training config) with the top-level ``overrides`` replacing its keys, written to ``out``."""
    try:
        conf = yaml.safe_load(Path(src).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputError("no such config", src, fix="check the recipe's conf/ directory") from None
    if not isinstance(conf, dict):
        raise InputError("not a YAML mapping", src, fix="a training config is a mapping of option: value")
    conf.update(overrides)
    what = ", ".join(f"{k}: {json.dumps(v)}" for k, v in overrides.items())
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        f.write(f"# {src} with {what} (salign.bin.prep_cs_mini config)\n")
        yaml.safe_dump(conf, f, default_flow_style=None, sort_keys=False, width=120)
