"""digitnet: handwritten digit recognition with TensorFlow 2.

The tutorial's five functions are importable from the top level, exactly as the tutorial names them::

    from digitnet import initialize_parameters, forward_propagation, calculate_cost, \
        train_parameters, predict

TensorFlow is imported only when one of them is first used, so ``import digitnet`` stays fast.
"""

from __future__ import annotations

import importlib

from ._version import __version__

# name -> module that defines it; resolved on first access (PEP 562) to keep imports lazy.
_LAZY = {
    "initialize_parameters": "digitnet.models.tutorial",
    "forward_propagation": "digitnet.models.tutorial",
    "calculate_cost": "digitnet.models.tutorial",
    "train_parameters": "digitnet.models.tutorial",
    "predict": "digitnet.models.tutorial",
    "Predictor": "digitnet.inference",
    "DigitnetError": "digitnet.errors",
    "load_mnist": "digitnet.data",
    "load_tutorial_split": "digitnet.data",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'digitnet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
