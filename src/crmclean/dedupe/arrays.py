"""Small array helpers for the pair work."""

from __future__ import annotations

import numpy as np


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` for integers: a sort and one comparison pass.

    numpy 2.4's ``np.unique`` takes a hash-table path that is ~50× slower on millions of int64
    pair keys on this class of machine (2.5 s against 0.05 s for 2.5M keys).
    """
    out = np.sort(values, kind="stable")
    if len(out) < 2:
        return out
    keep = np.empty(len(out), dtype=bool)
    keep[0] = True
    np.not_equal(out[1:], out[:-1], out=keep[1:])
    return out[keep]
