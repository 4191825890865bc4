"""The code-switch recipe's data side: stage lists with a decaying replay share, derived ablation configs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from salign.data.cs_recipe import SHAPES, derive_config, replay_sizes, write_lists
from salign.utils.io import InputError


def _fake(tmp_path: Path, n: dict) -> tuple:
    """data/{train,dev}/utt2set and stats/{train,dev}/ shape files for n[lang] utterances per language."""
    data, stats = tmp_path / "data", tmp_path / "stats"
    for split in ("train", "dev"):
        (data / split).mkdir(parents=True)
        (stats / split).mkdir(parents=True)
        keys = {f"{lang}-{split}-{i:03d}": f"{lang}_{split}" for lang, k in n.items() for i in range(k)}
        (data / split / "utt2set").write_text("".join(f"{k} {v}\n" for k, v in sorted(keys.items())))
        for name in SHAPES:
            (stats / split / name).write_text("".join(f"{k} {i + 1},80\n" for i, k in enumerate(sorted(keys))))
    return data, stats


def _keys(path: Path) -> list:
    return [line.split()[0] for line in (path / "speech_shape").read_text().splitlines()]


def test_replay_sizes_make_the_replayed_share_and_refuse_growing_ratios():
    assert replay_sizes(100, 1000, [0.5, 0.25, 0.0]) == [100, 33, 0]
    assert replay_sizes(100, 50, [0.5]) == [50]  # capped by what there is to replay
    for bad in ([0.2, 0.5], [1.0], [-0.1], []):
        with pytest.raises(InputError):
            replay_sizes(10, 10, bad)


def test_lists_split_by_language_and_replay_lists_shrink(tmp_path):
    data, stats = _fake(tmp_path, {"cs": 20, "en": 15, "es": 15})
    sizes = write_lists(data, stats, tmp_path / "lists", [0.5, 0.2], seed=3)
    lists = tmp_path / "lists"
    assert sizes["asr"] == 30 and sizes["st"] == 15 and sizes["cs"] == 20 and sizes["cs_dev"] == 20
    assert all(k.startswith("es-") for k in _keys(lists / "st"))
    assert {k.split("-")[0] for k in _keys(lists / "asr")} == {"en", "es"}
    r1, r2 = set(_keys(lists / "replay1")), set(_keys(lists / "replay2"))
    cs = set(_keys(lists / "cs"))
    assert cs <= r2 <= r1 and len(r1) == 40 and len(r2) == 25  # 20 cs + 20 (share 0.5) / + 5 (share 0.2)
    for name in SHAPES:  # the three shape files of a list hold the same keys (ESPnet checks it)
        assert [x.split()[0] for x in (lists / "replay2" / name).read_text().splitlines()] == _keys(lists / "replay2")
    info = json.loads((lists / "lists.json").read_text())
    assert info["replay_share"] == {"replay1": 0.5, "replay2": 0.2}
    again = write_lists(data, stats, tmp_path / "lists2", [0.5, 0.2], seed=3)
    assert again == sizes and _keys(tmp_path / "lists2" / "replay2") == _keys(lists / "replay2")


def test_lists_only_use_utterances_that_passed_the_filter(tmp_path):
    data, stats = _fake(tmp_path, {"cs": 4, "en": 3, "es": 3})
    kept = [x for x in (stats / "train" / "speech_shape").read_text().splitlines() if "cs-train-000" not in x]
    for name in SHAPES:
        (stats / "train" / name).write_text("\n".join(kept) + "\n")
    write_lists(data, stats, tmp_path / "lists", [0.5])
    assert "cs-train-000" not in _keys(tmp_path / "lists" / "cs")


def test_a_language_without_utterances_is_one_error(tmp_path):
    data, stats = _fake(tmp_path, {"cs": 4, "en": 3})
    with pytest.raises(InputError, match="list st: no utterance of es"):
        write_lists(data, stats, tmp_path / "lists", [0.5])


def test_derived_config_replaces_only_the_given_keys(tmp_path):
    src = tmp_path / "a.yaml"
    src.write_text("# comment\nprojector: moe\nprojector_conf: {stack: 2, groups: [en, es]}\nmax_epoch: 3\n")
    derive_config(src, tmp_path / "out" / "b.yaml", {"projector": "linear", "projector_conf": {"stack": 2}})
    text = (tmp_path / "out" / "b.yaml").read_text()
    conf = yaml.safe_load(text)
    assert conf == {"projector": "linear", "projector_conf": {"stack": 2}, "max_epoch": 3}
    assert text.startswith(f"# {src} with projector: \"linear\"")
    with pytest.raises(InputError):
        derive_config(tmp_path / "missing.yaml", tmp_path / "c.yaml", {})
