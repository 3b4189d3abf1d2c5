"""One validator for image arrays handed to the library: numeric dtype, finite, scaled into [0, 1]."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def check_pixels(a, *, error: type[InputError] = InputError, what: str = "images") -> np.ndarray:
    """Any numeric array to float32 in [0, 1], keeping its shape.

    uint8 is divided by 255 and uint16 by 65535; bool becomes 0/1; other numbers must already lie in
    [0, 1] and be finite. Anything else raises ``error`` (an :class:`InputError`) saying what arrived.
    """
    a = np.asarray(a)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise error(f"{what} must be a numeric array, got dtype {a.dtype}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise error(f"{what} contain NaN or infinite values")
    if a.size and (a.min() < 0.0 or a.max() > 1.0):
        raise error(f"float {what} must lie in [0, 1] (uint8 for 0-255); got [{a.min():g}, {a.max():g}]")
    return a
