"""Spike counts of several Poisson trains per feature, drawn by inverting the binomial CDF.

A feature fed by ``sources`` independent trains, each spiking with probability ``p`` per step,
receives Binomial(sources, p) spikes per step (Brian2's ``PoissonInput``; Brunel's external drive
is 800 trains at 25 Hz per neuron). One 32-bit Philox word ``u`` per feature and step, the same
counter-based draw as single Poisson trains use, gives the count as the number of thresholds
``T_k = round(CDF(k) * 2^32)`` that ``u`` reaches: exact in distribution to within 2^-33 per
count, independent of chunking and device. The table ends where the CDF rounds to 2^32, so no
count beyond it can occur; counts are bytes, so at most ``MAX_COUNT``.

This module needs numpy only: the plan checks a request's counts fit before it is queued.
"""

import math

import numpy as np

MAX_COUNT = 255
FULL = 2**32


def count_thresholds(sources: int, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(table, row)``: ``table`` (distinct probabilities, width) int64 thresholds, padded with
    2^32 (never reached); ``row`` (features,) int32, each feature's row of the table. ValueError
    when a count above MAX_COUNT has a probability that 32 bits can express."""
    flat = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    distinct, row = np.unique(flat, return_inverse=True)
    rows = [_thresholds(sources, float(p)) for p in distinct]
    width = max(len(r) for r in rows) if rows else 1
    table = np.full((len(rows), width), FULL, dtype=np.int64)
    for index, thresholds in enumerate(rows):
        table[index, : len(thresholds)] = thresholds
    return table, row.astype(np.int32)


def _thresholds(n: int, p: float) -> list[int]:
    """round(CDF(k) * 2^32) for k = 0, 1, ... up to the first that is 2^32."""
    p = min(max(p, 0.0), 1.0)
    if p == 0.0:
        return [FULL]
    if p == 1.0:
        if n > MAX_COUNT:
            raise ValueError(f"{n} trains that always spike give {n} spikes per step, over {MAX_COUNT}")
        return [0] * n + [FULL]
    # pmf(k) by the ratio pmf(k) / pmf(k - 1) = (n - k + 1) / k * p / q: relative error about k
    # ulps. Differences of lgamma lose about lgamma(n)'s ulp per term instead (1e-9 at n = 10^6),
    # and the sum then never came within 2^-33 of 1.
    pmf = math.exp(n * math.log1p(-p))
    odds = p / (1.0 - p)
    thresholds: list[int] = []
    cdf = 0.0
    for k in range(min(n, MAX_COUNT + 1) + 1):
        if k:
            pmf *= (n - k + 1) / k * odds
        cdf += pmf
        threshold = min(FULL, round(cdf * FULL)) if k < n else FULL
        thresholds.append(threshold)
        if threshold == FULL:
            return thresholds
    raise ValueError(
        f"{n} trains at this rate give more than {MAX_COUNT} spikes in a step with a probability above 2^-32 "
        f"(mean {n * p:.3g} per step)"
    )
