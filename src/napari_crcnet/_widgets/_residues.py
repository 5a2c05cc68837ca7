"""Residue stacks (IRD residues and partial sums, CRCNet unit outputs): which n to compute, and their display."""

from __future__ import annotations

import numpy as np


def robust_limits(data: np.ndarray, percentile: float = 0.5) -> tuple[float, float]:
    """Contrast limits that ignore the extreme ``percentile`` % on each side (for residue stacks)."""
    sample = np.asarray(data, dtype=np.float32).ravel()
    if sample.size > 2_000_000:  # percentiles of a regular subsample are plenty for display
        sample = sample[:: sample.size // 1_000_000]
    low, high = np.percentile(sample, [percentile, 100 - percentile])
    if not high > low:
        high = low + 1e-6
    return float(low), float(high)


def parse_int_list(text: str) -> list[int]:
    """``"0, 1, 2, 5-8, 50"`` -> ``[0, 1, 2, 5, 6, 7, 8, 50]`` (sorted, unique, non-negative)."""
    values: set[int] = set()
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                first, last = part.split("-", 1)
                values.update(range(int(first), int(last) + 1))
            else:
                values.add(int(part))
        except ValueError:
            raise ValueError(f"not a list of integers: {text!r} (write e.g. '0, 1, 2, 5, 10, 50' or '0-20')") from None
    if any(v < 0 for v in values):
        raise ValueError(f"residue indices must be >= 0, got {text!r}")
    if not values:
        raise ValueError("give at least one residue index n (e.g. '0, 1, 2, 5, 10, 50')")
    return sorted(values)
