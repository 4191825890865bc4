"""Speech-text alignment losses, one class per method, chosen with ``--align`` (an ESPnet ``ClassChoices``).

Each method registers itself in :mod:`salign.losses.registry` when its module is imported; the imports below make
sure salign's own methods are registered whenever any part of the package is used (in this order, which is the
order ``--align`` lists them: the composite ``multi`` last).
"""
# isort: off
from salign.losses import adversarial, contrastive, ot  # noqa: F401  (registers the methods)
from salign.losses import composite  # noqa: F401  (registers multi)
# isort: on
