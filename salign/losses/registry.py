"""The alignment methods by name: the one registry that ``--align`` (the task's ``align_choices``) and
``--align multi`` (:class:`~salign.losses.composite.CompositeAlign`) read.

Each method module registers its class when imported (``@register("ot")``); importing any module of
``salign.losses`` imports the package, whose ``__init__`` imports salign's own methods, so the registry is complete
before anyone reads it. A method of your own registers the same way before the task parses its arguments::

    from salign.losses.abs_align import AbsAlign
    from salign.losses.registry import register

    @register("mine")
    class MyAlign(AbsAlign): ...

This module imports nothing of salign's but the base class: it depends on nothing above the loss package.
"""
from __future__ import annotations

import re
from typing import Callable, Dict, Type, TypeVar

from salign.losses.abs_align import AbsAlign

A = TypeVar("A", bound=Type[AbsAlign])

#: name -> class; the task's ``align_choices.classes`` is this very dict (a late registration is a choice too)
ALIGN_METHODS: Dict[str, Type[AbsAlign]] = {}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED = ("none", "nil", "null")  # ESPnet's ClassChoices' words for "no class"


def register(name: str) -> Callable[[A], A]:
    """Class decorator: make an :class:`AbsAlign` subclass the method ``--align <name>``.

    Re-registering the same class under its name is a no-op (a module imported twice); another class under a taken
    name is an error, as is a name ESPnet's ``ClassChoices`` cannot use (lower-case letters, digits and ``_``).
    """
    if not _NAME.match(name) or name in _RESERVED:
        raise ValueError(f"alignment method name {name!r}: use lower-case letters, digits and _ "
                         f"(not {', '.join(_RESERVED)})")

    def add(cls: A) -> A:
        if not (isinstance(cls, type) and issubclass(cls, AbsAlign)):
            raise TypeError(f"--align {name}: {cls!r} is not a subclass of salign.losses.abs_align.AbsAlign")
        known = ALIGN_METHODS.get(name)
        if known is not None and known is not cls:
            raise ValueError(f"--align {name} is already {known.__module__}.{known.__qualname__} "
                             f"(fix: register {cls.__qualname__} under another name)")
        ALIGN_METHODS[name] = cls
        return cls

    return add


def align_methods() -> Dict[str, Type[AbsAlign]]:
    """A copy of the registry: every registered method by name."""
    return dict(ALIGN_METHODS)
