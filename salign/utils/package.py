"""Where a model's files are: the files its config names, and the package (an unpacked model archive) it may lie in.

* :func:`named_files`: every file or directory a trained model's ``config.yaml`` names for decoding (the CMVN stats,
  token lists, BPE models, a speech-LLM's layers file and Hugging Face LM directory, ...): what
  :func:`salign.decode.pack.pack_model` puts into the archive;
* a *package* is an unpacked archive: the directory holding ``meta.yaml`` (:func:`package_root`); its config names
  its files relative to that directory, and :func:`resolve_config` makes those names absolute, whatever the working
  directory (every model built from its files goes through it: :class:`salign.tasks.common.SpeechTaskMixin`);
* :func:`check_named_files`: one line for a named file that is missing (never reported as a damaged model).

No heavy imports (yaml only): the tasks, the loader and the packer all use it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from salign.utils.io import InputError, PathLike

__all__ = ["META", "REQUIRED", "check_named_files", "dotted", "named_files", "package_root", "resolve_config",
           "set_key"]

META = "meta.yaml"
#: top-level options that name a file the model needs to decode (when a path, not an inline list)
TOP_FILES = ("token_list", "src_token_list", "bpemodel", "src_bpemodel")
#: ``*_conf`` keys whose file must exist when given (the others are packed when they name an existing path)
REQUIRED = {"stats_file": "stage 3 (features) writes it", "layers_file": "stage 11c (select_layers) writes it",
            "path": "the Hugging Face LM directory it was trained with"}
#: ``*_conf`` keys read only while training (never by a model built from its files): not packed
TRAINING_ONLY = {("projector_conf", "transition_from"), ("speech_adapter_conf", "transition_from"),
                 ("encoder_conf", "checkpoint")}
KeyPath = Tuple[Any, ...]


def dotted(keypath: KeyPath) -> str:
    """``normalize_conf.stats_file`` of a key path."""
    return ".".join(str(k) for k in keypath)


def named_files(conf: Mapping[str, Any]) -> List[Tuple[KeyPath, str]]:
    """(key path, value) of every file or directory a training config names for decoding: the :data:`TOP_FILES`
    given as paths, every string inside a ``*_conf`` section that names an existing path (or a :data:`REQUIRED` key,
    existing or not), except :data:`TRAINING_ONLY` ones."""
    out: List[Tuple[KeyPath, str]] = [((k,), conf[k]) for k in TOP_FILES if isinstance(conf.get(k), str) and conf[k]]

    def walk(value: Any, keypath: KeyPath) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, keypath + (k,))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, keypath + (i,))
        elif isinstance(value, str) and value and (keypath[0], keypath[-1]) not in TRAINING_ONLY:
            if keypath[-1] in REQUIRED or ("/" in value or "." in value) and Path(value).exists():
                out.append((keypath, value))

    for key, value in conf.items():
        if str(key).endswith("_conf"):
            walk(value, (key,))
    return out


def set_key(conf: Any, keypath: KeyPath, value: Any) -> None:
    """Set the value at ``keypath`` in a nested config."""
    for k in keypath[:-1]:
        conf = conf[k]
    conf[keypath[-1]] = value


def package_root(config: PathLike, levels: int = 6) -> Optional[Path]:
    """The package (unpacked archive) a config lies in: the nearest directory above it holding ``meta.yaml``."""
    here = Path(config).resolve().parent
    for _ in range(levels):
        if (here / META).is_file():
            return here
        if here.parent == here:
            break
        here = here.parent
    return None


def resolve_config(config: PathLike) -> Tuple[Dict[str, Any], bool]:
    """A model's config as a dict, with the relative file names of a packaged model taken from its package root
    (:func:`package_root`); the second value says whether anything was resolved so."""
    with open(config, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    root = package_root(config)
    changed = False
    if root is not None:
        for keypath, value in named_files(conf):
            if not os.path.isabs(value) and (root / value).exists():
                set_key(conf, keypath, str(root / value))
                changed = True
    return conf, changed


def check_named_files(config: PathLike) -> None:
    """One line for a file the model's config names that is missing (the CMVN stats, a token list, ...), before the
    model is built: never reported as a damaged model file."""
    conf, _ = resolve_config(config)
    for keypath, value in named_files(conf):
        if not Path(value).exists():
            raise InputError(f"{dotted(keypath)} names {value}, which does not exist here", config,
                             fix="decode in the recipe directory the model was trained in, or use its packed "
                                 "model.zip (stage 14), which carries every file its config names")
