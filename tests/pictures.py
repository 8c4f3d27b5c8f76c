"""Test pictures drawn with Pillow: sharp, distinct per seed (for diagnostics and previews)."""

from __future__ import annotations

import random

from PIL import Image, ImageDraw


def picture(seed: int, size: tuple[int, int] = (640, 640)) -> Image.Image:
    """A sharp picture: random flat shapes (edges) with a little noise; distinct per seed."""
    rng = random.Random(seed)
    w, h = size
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        box = [x0, y0, x0 + rng.randrange(w // 8, w // 2), y0 + rng.randrange(h // 8, h // 2)]
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=fill)
    noise = Image.frombytes("L", size, rng.randbytes(w * h)).convert("RGB")
    return Image.blend(image, noise, 0.1)
