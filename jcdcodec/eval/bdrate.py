"""Bjontegaard delta rate between RD curves.

The integration itself is the maintained ``bjontegaard`` package (piecewise cubic
interpolation, the method VCEG recommends). What jcd adds is the curve hygiene RD points
of noisy-input coding need: PSNR against the clean image is not monotonic in rate (a
codec that keeps more noise gets worse), so each curve is reduced to its upper envelope
(the best quality reached at or below each rate) before the comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def upper_envelope(rates: Sequence[float], quality: Sequence[float]) -> tuple[list[float], list[float]]:
    """Points not dominated by a cheaper point, sorted by rate (strictly increasing in both)."""
    pts = sorted((r, q) for r, q in zip(rates, quality, strict=True) if math.isfinite(r) and math.isfinite(q))
    env_r: list[float] = []
    env_q: list[float] = []
    for r, q in pts:
        if env_q and q <= env_q[-1]:
            continue
        if env_r and r == env_r[-1]:
            env_q[-1] = q
            continue
        env_r.append(r)
        env_q.append(q)
    return env_r, env_q


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
) -> float:
    """Average rate difference (%) of test against anchor at equal quality; NaN without overlap.

    Negative means the test method needs fewer bits.
    """
    import bjontegaard as bd

    ar, aq = upper_envelope(anchor_rate, anchor_quality)
    tr, tq = upper_envelope(test_rate, test_quality)
    if len(ar) < 2 or len(tr) < 2:
        return float("nan")
    lo, hi = max(min(aq), min(tq)), min(max(aq), max(tq))
    if hi <= lo:
        return float("nan")
    try:
        return float(bd.bd_rate(ar, aq, tr, tq, method="pchip", require_matching_points=False, min_overlap=0.0))
    except (ValueError, AssertionError, ZeroDivisionError):
        return float("nan")
