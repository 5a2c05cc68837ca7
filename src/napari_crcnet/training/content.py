"""Synthetic training content: what photo sets lack (dead leaves: flat regions and strong edges), photo crops
downscaled 2x, and fluorescence-like images (sparse bright structures on a dark background) for a microscopy
model. Every draw comes from the NumPy generator passed in."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def dead_leaves(size: int, channels: int, rng: np.random.Generator, r_min: float = 3.0) -> np.ndarray:
    """A ``(channels, size, size)`` dead-leaves image in [0, 1]: opaque discs of random flat colour, radius
    ``r`` drawn with density ``~ 1/r^3`` in ``[r_min, size / 2]`` (scale invariant, like photos), dropped
    until the square is covered. Drawn at twice the size and averaged 2x2, so edges are anti-aliased."""
    n = 2 * int(size)
    image = np.zeros((channels, n, n))
    covered = np.zeros((n, n), dtype=bool)
    r_max = n / 2
    a, b = (2 * r_min) ** -2, r_max**-2
    for count in range(5000):
        r = (a - rng.random() * (a - b)) ** -0.5  # inverse CDF of p(r) ~ r^-3 on [2 r_min, r_max]
        cy, cx = rng.uniform(-r, n + r, size=2)
        colour = rng.random(channels) if channels == 3 else np.full(1, rng.random())
        y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 2, n)
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 2, n)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        box = covered[y0:y1, x0:x1]
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & ~box  # later discs lie below earlier ones
        image[:, y0:y1, x0:x1][:, disc] = colour[:, None]
        box |= disc
        if count % 32 == 31 and covered.all():
            break
    return image.reshape(channels, size, 2, size, 2).mean(axis=(2, 4)).astype(np.float32)


def downscale2(image: np.ndarray) -> np.ndarray:
    """A ``(C, 2Y, 2X)`` image averaged over 2x2 blocks: ``(C, Y, X)``."""
    c, h, w = image.shape
    return image.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def fluorescence(size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(1, size, size)`` fluorescence-like image in [0, 1]: a dark background (offset 0-5 %) with a random
    mix of filaments (smooth random curves, 0.5-2 px wide), blobs (Gaussian spots, sigma 1.5-6 px), membranes
    (ellipse outlines, 1-2 px wide), puncta (sigma 0.5-1 px) and a faint diffuse haze, each with its own
    brightness; band-limited by a Gaussian of sigma 0.5 px like a sampled microscope image."""
    n = int(size)
    image = np.zeros((n, n))
    for draw in (_filaments, _blobs, _membranes, _puncta):
        if rng.random() < 0.7:
            image += draw(n, rng)
    if not image.any():
        image += _blobs(n, rng)
    haze = ndimage.gaussian_filter(rng.random((n, n)), n / 6)
    image = ndimage.gaussian_filter(image, 0.5) + rng.uniform(0, 0.3) * (haze - haze.min())
    image = image / max(image.max(), 1e-12) * rng.uniform(0.3, 1.0)
    return (rng.uniform(0, 0.05) + image)[None].clip(0, 1).astype(np.float32)


def _splat_points(n: int, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    image = np.zeros((n, n))
    inside = np.all((points >= 0) & (points < n - 1), axis=1)
    y, x = points[inside].T.astype(int)
    np.add.at(image, (y, x), weights[inside])
    return image


def _line(samples: np.ndarray, width: float) -> np.ndarray:
    """A curve splatted at about 2 samples per pixel, blurred to ``width`` (sigma, px), peak about 1."""
    return ndimage.gaussian_filter(samples, width) * np.sqrt(2 * np.pi) * width / 2


def _filaments(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((n, n))
    for _ in range(int(rng.integers(1, 8))):
        steps = 4 * n
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.05, steps))
        path = rng.uniform(0, n, 2) + np.cumsum(np.stack([np.sin(heading), np.cos(heading)], 1) * 0.5, axis=0)
        out += rng.uniform(0.3, 1) * _line(_splat_points(n, path, np.full(steps, 1.0)), rng.uniform(0.5, 2.0))
    return out


def _blobs(n: int, rng: np.random.Generator) -> np.ndarray:
    count = int(rng.integers(1, max(2, n // 6)))
    points = rng.uniform(0, n, (count, 2))
    image = _splat_points(n, points, rng.uniform(0.2, 1, count))
    sigma = rng.uniform(1.5, 6)
    return ndimage.gaussian_filter(image, sigma) * 2 * np.pi * sigma**2


def _membranes(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((n, n))
    t = np.linspace(0, 2 * np.pi, 8 * n)  # enough samples for about 2 per pixel on the largest outline
    for _ in range(int(rng.integers(1, 4))):
        centre, radii, angle = rng.uniform(0, n, 2), rng.uniform(n / 10, n / 2, 2), rng.uniform(0, np.pi)
        ellipse = np.stack([radii[0] * np.sin(t), radii[1] * np.cos(t)], 1)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        outline = _splat_points(n, centre + ellipse @ rotation.T, np.full(t.size, 1.0))
        out += rng.uniform(0.3, 1) * _line(outline, rng.uniform(0.5, 1.5))
    return out


def _puncta(n: int, rng: np.random.Generator) -> np.ndarray:
    count = int(rng.integers(2, max(3, n // 3)))
    image = _splat_points(n, rng.uniform(0, n, (count, 2)), rng.uniform(0.3, 1, count))
    sigma = rng.uniform(0.5, 1.0)
    return ndimage.gaussian_filter(image, sigma) * 2 * np.pi * sigma**2
