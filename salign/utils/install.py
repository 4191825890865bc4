"""What salign needs from the machine (Python modules, commands, files) and what is missing, with the fixing command.

:func:`missing` and :func:`warnings` return one line per problem; :func:`report` prints them (the
``salign.bin.check_install`` tool).
"""
from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from typing import List, Optional, Tuple

PY_MODULES: List[Tuple[str, str]] = [
    ("torch", "tools/install.sh"),
    ("espnet2", "tools/install.sh"),
    ("kaldiio", "tools/venv/bin/pip install kaldiio"),
    ("kaldi_native_fbank", "tools/venv/bin/pip install kaldi-native-fbank"),
    ("sentencepiece", "tools/venv/bin/pip install sentencepiece==0.2.0"),
    ("sacrebleu", "tools/venv/bin/pip install sacrebleu"),
    ("jiwer", "tools/venv/bin/pip install jiwer"),
    ("yaml", "tools/venv/bin/pip install pyyaml"),
    ("editdistance", "tools/venv/bin/pip install editdistance"),
    ("espnet_model_zoo", "tools/venv/bin/pip install pandas && tools/venv/bin/pip install --no-deps "
                         "espnet_model_zoo==0.1.7"),
    ("salign", "tools/venv/bin/pip install --no-deps -e ."),
]
COMMANDS: List[Tuple[str, str]] = [
    ("sox", "apt-get install -y sox libsox-fmt-all"),
    ("espeak-ng", "apt-get install -y espeak-ng"),
    ("flite", "apt-get install -y flite"),
    ("apertium", "apt-get install -y apertium apertium-eng-spa"),
    ("shellcheck", "apt-get install -y shellcheck"),
]
FILES: List[Tuple[str, str]] = [
    ("/usr/share/games/fortunes", "apt-get install -y fortunes"),
]


def missing() -> List[str]:
    """Return one line per missing requirement, naming it and the fix."""
    out = []
    for mod, fix in PY_MODULES:
        try:
            importlib.import_module(mod)
        except Exception as exc:  # noqa: BLE001 - any import failure is a missing dependency
            out.append(f"python module {mod!r} unusable ({type(exc).__name__}: {exc}); fix: {fix}")
    for cmd, fix in COMMANDS:
        if shutil.which(cmd) is None:
            out.append(f"command {cmd!r} not found; fix: {fix}")
    for path, fix in FILES:
        if not os.path.exists(path):
            out.append(f"{path} not found; fix: {fix}")
    return out


def warnings() -> List[str]:
    """Return one line per installed-but-slow component (works, but costs time), naming the fix."""
    out = []
    try:
        from importlib.metadata import version

        tg = version("typeguard")
        if int(tg.split(".")[0]) >= 3:
            out.append(f"typeguard {tg}: every process importing ESPnet spends ~12 s instrumenting its @typechecked "
                       "functions; fix: tools/install.sh (pins typeguard 2, tools/constraints.txt)")
    except Exception:  # noqa: BLE001 - metadata missing: nothing to say
        pass
    return out


def pretrained(store: Optional[str] = None) -> List[str]:
    """Return one line per catalog model (salign.pretrained) saying whether it is fetched and converted in ``store``
    (default: tools/pretrained or $SALIGN_PRETRAINED), and the command that sets it up when it is not. Not an
    install failure: the recipes that need a model fetch it themselves."""
    from salign.pretrained.catalog import CATALOG
    from salign.pretrained.fetch import status

    store = store or os.environ.get("SALIGN_PRETRAINED") or str(Path(__file__).resolve().parents[2] / "tools" /
                                                                  "pretrained")
    out = []
    for name in CATALOG:
        why = status(name, store)
        where = Path(store) / name
        out.append(f"{name}: ready ({where})" if why is None else
                   f"{name}: {why} ({where}); fix: tools/get_pretrained.sh {name} (the recipes that use it run this)")
    return out


def report() -> int:
    """Print missing requirements (or an all-clear line), slow components and the pretrained models' state; 1 if
    anything is missing, else 0 (a pretrained model not fetched yet is reported, not an error)."""
    problems = missing()
    for line in problems:
        print(f"[check_install] MISSING: {line}")
    for line in warnings():
        print(f"[check_install] SLOW: {line}")
    try:
        for line in pretrained():
            print(f"[check_install] PRETRAINED: {line}")
    except Exception as exc:  # noqa: BLE001 - salign itself missing: already reported above
        print(f"[check_install] PRETRAINED: cannot check ({type(exc).__name__}: {exc})")
    if not problems:
        import torch

        print(f"[check_install] OK: torch {torch.__version__} (cuda={torch.cuda.is_available()}), espnet, salign")
    return 1 if problems else 0

