"""Several alignment methods at once, ``--align multi``.

``align_conf``::

    methods:
      - {name: adversarial, weight: 1.0, conf: {lambda_max: 1.0}}
      - {name: ot, weight: 0.5, conf: {layers: [1], epsilon: 0.1}}
      - {name: contrastive, prefix: ctr_top, conf: {temperature: 0.1}}

Each entry builds ``member_methods()[name](dim=dim, **conf)`` (any method of :mod:`salign.losses.registry` but a
composite); the composite loss is ``Σ weight_m · loss_m``. Statistics of method m are reported as
``<prefix>_<key>`` (prefix defaults to the name; give ``prefix`` to use one method twice) plus ``<prefix>_loss`` (its
weighted loss). The separator is ``_`` rather than ``/``: ESPnet's reporter accepts ``/`` but
writes ``<key>.png`` plots into sub-directories, and ``name=value`` log lines stay greppable with ``\\w+``.
``needs_layers`` is true when any member needs layers.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type

import torch
from typeguard import typechecked

from salign.losses.abs_align import AbsAlign, AlignBatch, Stats
from salign.losses.registry import align_methods, register

_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def member_methods() -> Dict[str, Type[AbsAlign]]:
    """The methods a composite may combine: every registered one but composites."""
    return {name: cls for name, cls in align_methods().items() if not issubclass(cls, CompositeAlign)}


@register("multi")
class CompositeAlign(AbsAlign):
    """Weighted sum of registered alignment methods (``--align multi``)."""

    @typechecked
    def __init__(self, dim: int, methods: Sequence[Mapping[str, Any]] = ()) -> None:
        """Build each member; ``methods`` is a list of ``{name, weight=1.0, conf={}, prefix=name}``."""
        super().__init__()
        if not methods:
            raise ValueError("align_conf.methods must list at least one method, e.g. "
                             "[{name: adversarial, weight: 1.0, conf: {}}]")
        known = member_methods()
        self.methods = torch.nn.ModuleDict()
        self.method_weights: Dict[str, float] = {}
        for i, entry in enumerate(methods):
            if not isinstance(entry, Mapping) or "name" not in entry:
                raise ValueError(f"align_conf.methods[{i}] must be a mapping with `name`, got {entry!r}")
            extra = set(entry) - {"name", "weight", "conf", "prefix"}
            if extra:
                raise ValueError(f"align_conf.methods[{i}]: unknown keys {sorted(extra)} "
                                 "(allowed: name, weight, conf, prefix)")
            name = str(entry["name"])
            if name == "multi" or name not in known:
                raise ValueError(f"align_conf.methods[{i}].name {name!r} is not a registered method "
                                 f"(choose from {sorted(known)})")
            prefix = str(entry.get("prefix") or name)
            if not _PREFIX.match(prefix):
                raise ValueError(f"align_conf.methods[{i}].prefix {prefix!r}: use letters, digits and _")
            if prefix in self.methods:
                raise ValueError(f"align_conf.methods: {prefix!r} appears twice (fix: give each a distinct prefix)")
            conf = dict(entry.get("conf") or {})
            self.methods[prefix] = known[name](dim=dim, **conf)
            self.method_weights[prefix] = float(entry.get("weight", 1.0))
        self.needs_layers = any(m.needs_layers for m in self.methods.values())

    def members(self) -> List[Tuple[str, AbsAlign]]:
        """(prefix, module) of each member in configuration order."""
        return list(self.methods.items())

    def find(self, cls: Type[AbsAlign]) -> Optional[Tuple[str, AbsAlign]]:
        """The first member that is an instance of ``cls``."""
        for prefix, m in self.methods.items():
            if isinstance(m, cls):
                return prefix, m
        return None

    def forward(self, batch: AlignBatch) -> Tuple[torch.Tensor, Stats]:
        """``Σ weight_m · loss_m`` with every member's statistics prefixed."""
        total = batch.speech.new_zeros((), dtype=torch.float32)
        stats: Stats = {}
        for prefix, module in self.methods.items():
            loss, st = module(batch)
            weighted = self.method_weights[prefix] * loss
            total = total + weighted
            stats[f"{prefix}_loss"] = weighted.detach()
            for k, v in st.items():
                stats[f"{prefix}_{k}"] = v
        return total, stats
