"""Argument shaping shared by the modules: numpy float64 vectors with checked
shapes and dtypes, parameter names, warnings. No statistics here."""

import warnings

import numpy as np

from .exceptions import GradfitWarning, InvalidInput


def vector(x, n, what):
    """``x`` as a contiguous 1-d float64 array of length ``n`` (None: any length)."""
    try:
        a = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise InvalidInput(f"{what}: cannot be read as an array of numbers ({e})") from None
    if a.dtype == object or a.dtype.kind not in "fiu":
        raise InvalidInput(
            f"{what}: expected real numbers (float64), got an array of dtype {a.dtype}"
        )
    if a.ndim != 1:
        want = f"({n},)" if n is not None else "(n,)"
        raise InvalidInput(f"{what}: expected a 1-d array of shape {want}, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise InvalidInput(f"{what}: expected {n} entries, got {a.shape[0]}")
    return np.ascontiguousarray(a, dtype=np.float64)


def warn_all(messages, stacklevel=3):
    """Emit the library's notes as Python warnings."""
    for m in messages or ():
        warnings.warn(m, GradfitWarning, stacklevel=stacklevel)


def scalar(x):
    """A float as pyhf's numpy backend returns it (a 0-d float64 array); None stays None."""
    return None if x is None else np.asarray(x, dtype=np.float64)
