"""A one-line answer when ESPnet's own ``espnet2.bin.st_inference`` (or ``st_train``) is given a salign model.

ESPnet's ST task builds its stock model from any config.yaml; given a salign model's (S-Align: ``text_encoder``;
speech-LLM: ``lm`` and ``projector``) it fails deep inside with a bare ``TypeError: got an unexpected keyword argument
'st_weight'``. :func:`install` (run at start-up in salign's environment: ``tools/install.sh`` puts a ``.pth`` line in
the virtual environment, and the recipes' ``utils/pyhooks/sitecustomize.py`` calls it too) adds an exception hook
that, for exactly that case, prints one line naming the config and the tool that decodes it, and exits with status 2;
every other exception is reported as before. It imports nothing heavy (only ``yaml``, and only then).
"""
from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import Optional, Sequence, Type

__all__ = ["install", "hint"]

_FLAGS = {"st_inference": "--st_train_config", "st_train": "--config"}


def _value(argv: Sequence[str], flag: str) -> Optional[str]:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _salign_family(config: str) -> Optional[str]:
    import yaml

    try:
        with open(config, encoding="utf-8") as f:
            conf = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(conf, dict):
        return None
    if conf.get("lm") is not None and "projector" in conf:
        return "speech-LLM"
    return "S-Align" if "text_encoder" in conf else None


def hint(exc_type: Type[BaseException], argv: Sequence[str]) -> Optional[str]:
    """The one line for ``exc_type`` raised by ESPnet's ST tool run as ``argv`` on a salign config, else None."""
    if not issubclass(exc_type, (TypeError, KeyError, AttributeError, RuntimeError)) or not argv:
        return None
    script = os.path.normpath(argv[0])
    tool = next((t for t in _FLAGS if script.endswith(os.path.join("espnet2", "bin", f"{t}.py"))), None)
    config = _value(argv, _FLAGS[tool]) if tool else None
    family = _salign_family(config) if config else None
    if family is None:
        return None
    ours = "salign.bin.st_inference" if tool == "st_inference" else (
        "salign.bin.llm_train" if family == "speech-LLM" else "salign.bin.st_train")
    return (f"ERROR [{tool}]: {config}: the config of a salign {family} model; ESPnet's espnet2.bin.{tool} builds "
            f"ESPnet's stock ST model only (fix: python -m {ours} with the same options"
            + ("; in Python: import salign.tasks.st as t; t.register_with_espnet() before ESPnet's Speech2Text)"
               if tool == "st_inference" else ")"))


def install() -> None:
    """Chain :func:`hint` in front of the current ``sys.excepthook`` (once per process)."""
    previous = sys.excepthook
    if getattr(previous, "_salign_hint", False):
        return

    def hook(exc_type: Type[BaseException], exc: BaseException, tb: Optional[TracebackType]) -> None:
        try:
            line = hint(exc_type, sys.argv)
        except Exception:  # noqa: BLE001 - a hint must never hide the real error
            line = None
        if line is None:
            previous(exc_type, exc, tb)
            return
        sys.stdout.flush()
        print(line, file=sys.stderr)
        sys.stderr.flush()
        os._exit(2)

    hook._salign_hint = True  # type: ignore[attr-defined]
    sys.excepthook = hook
