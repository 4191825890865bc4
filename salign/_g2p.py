"""Keep ESPnet's imports off the network: ``g2p_en`` is imported only when a G2P is used.

``espnet2.text.phoneme_tokenizer`` (imported by every ESPnet task) does ``import g2p_en``, whose import calls
``nltk.download`` for two resources missing from a fresh install: 8 lines of failed ``[nltk_data]`` downloads on
every start, and a stalled start where outbound traffic is dropped. salign uses no phoneme tokenizer, so
:func:`defer_g2p_en` puts a stand-in module in ``sys.modules`` that imports the real ``g2p_en`` on its first real
use (``g2p_en.G2p``): a ``g2p_en``/``g2p_en_no_space`` tokenizer then behaves exactly as before (it downloads the
resources if it can, else nltk raises its own ``LookupError``: "Resource cmudict not found ... nltk.download(...)").
ESPnet itself is not changed. ``salign/__init__.py`` calls it; ``utils/pyhooks/sitecustomize.py`` does the same for
ESPnet's own entry points that the recipes run (``--model_family espnet``), through ``PYTHONPATH`` in
``egs/TEMPLATE/path.sh``.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

NAME = "g2p_en"


class _Deferred(types.ModuleType):
    """``g2p_en`` until an attribute other than a dunder is asked for; then the real module."""

    def __getattr__(self, attr: str):
        # dunders (``__file__``, ``__wrapped__``, ...) are what module scans such as inspect.getmodule ask: no import
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        if sys.modules.get(NAME) is self:
            del sys.modules[NAME]
            try:
                real = importlib.import_module(NAME)
            except BaseException:
                sys.modules[NAME] = self
                raise
        else:
            real = importlib.import_module(NAME)
        # whoever holds this stand-in (``phoneme_tokenizer.g2p_en``) now reads the real module's names directly
        self.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})
        return getattr(real, attr)


def defer_g2p_en() -> None:
    """Install the stand-in for ``g2p_en`` (no-op if it is imported already or not installed)."""
    if NAME in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(NAME)
    except (ImportError, ValueError):
        return
    if spec is None:
        return
    module = _Deferred(NAME, "g2p_en (imported on first use by salign._g2p)")
    module.__spec__ = spec
    module.__file__ = spec.origin
    module.__path__ = list(spec.submodule_search_locations or [])
    module.__loader__ = spec.loader
    sys.modules[NAME] = module
