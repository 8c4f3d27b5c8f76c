"""The preview pane: frames built once into ready strips and drawn again for free; half-block
runs merged (equal neighbours one segment, colours off by a bounded amount)."""

from __future__ import annotations

import math
import random
import threading
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from rich.color import ColorSystem
from rich.console import Console
from textual.strip import Strip

from tests.app.conftest import settle
from tests.pictures import picture
from tui.app.app import CuratorApp
from tui.app.widgets import preview as preview_module
from tui.app.widgets.preview import (
    HALF_BLOCK,
    TOLERANCE,
    Frame,
    build_preview,
    half_block_rows,
)

RED, BLUE = (200, 30, 30), (20, 40, 220)


def image_of(rows: list[list[tuple[int, int, int]]]) -> Image.Image:
    image = Image.new("RGB", (len(rows[0]), len(rows)))
    image.putdata([p for row in rows for p in row])
    return image


def cells(row) -> list[tuple[tuple[int, int, int], tuple[int, int, int]]]:
    """The (upper, lower) colours of every cell a row of segments draws."""
    out = []
    for segment in row:
        bg = segment.style.bgcolor.triplet
        fg = segment.style.color.triplet if segment.style.color else bg
        for char in segment.text:
            out.append((tuple(bg), tuple(fg) if char == HALF_BLOCK else tuple(bg)))
    return out


# ---- the half-block encoding -------------------------------------------------------------------


def test_equal_neighbours_are_one_segment() -> None:
    rows = half_block_rows(image_of([[RED] * 10, [BLUE] * 10]))
    assert len(rows) == 1 and len(rows[0]) == 1
    (segment,) = rows[0]
    assert segment.text == HALF_BLOCK * 10
    assert segment.style.bgcolor.triplet == RED and segment.style.color.triplet == BLUE
    # One escape code for the whole run on the wire, not one per cell.
    console = Console(color_system="truecolor", file=None, force_terminal=True)
    assert Strip(rows[0]).render(console).count("\x1b[") == 2  # the colours, the reset


def test_a_cell_of_one_colour_is_a_blank_on_the_background() -> None:
    ((segment,),) = half_block_rows(image_of([[RED] * 4, [RED] * 4]))
    assert segment.text == "    " and segment.style.color is None
    assert segment.style.bgcolor.triplet == RED


def test_distinct_neighbours_stay_apart_and_an_odd_last_row_is_drawn() -> None:
    rows = half_block_rows(image_of([[RED, BLUE, RED], [BLUE, RED, BLUE], [RED, RED, BLUE]]))
    assert [len(row) for row in rows] == [3, 2]
    assert cells(rows[0]) == [(RED, BLUE), (BLUE, RED), (RED, BLUE)]
    assert cells(rows[1]) == [(RED, RED), (RED, RED), (BLUE, BLUE)]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    size=st.tuples(st.integers(1, 24), st.integers(1, 9)),
    tolerance=st.sampled_from([0, 1, 5, TOLERANCE, 31]),
)
def test_no_pixel_is_off_by_more_than_half_the_tolerance(seed, size, tolerance) -> None:
    rng = random.Random(seed)
    # Smooth-ish colours (a walk), so runs do form, and jumps, so they also break.
    walk = [rng.randrange(256) for _ in range(3)]
    pixels = []
    for _ in range(size[0] * size[1]):
        step = 40 if rng.random() < 0.1 else 4
        walk = [min(255, max(0, c + rng.randint(-step, step))) for c in walk]
        pixels.append(tuple(walk))
    w, h = size
    image = image_of([pixels[y * w : (y + 1) * w] for y in range(h)])
    rows = half_block_rows(image, tolerance=tolerance)
    bound = math.ceil(tolerance / 2)
    for r, row in enumerate(rows):
        drawn = cells(row)
        assert len(drawn) == w
        for x, (upper, lower) in enumerate(drawn):
            y = 2 * r
            wanted = [image.getpixel((x, y)), image.getpixel((x, min(y + 1, h - 1)))]
            for got, want in zip((upper, lower), wanted, strict=True):
                assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= bound


def test_tolerance_zero_is_lossless() -> None:
    image = picture(3, (30, 20))
    rows = half_block_rows(image, tolerance=0)
    for r, row in enumerate(rows):
        for x, (upper, lower) in enumerate(cells(row)):
            assert upper == image.getpixel((x, 2 * r))
            assert lower == image.getpixel((x, 2 * r + 1))


def test_in_256_colours_cells_the_palette_draws_alike_merge() -> None:
    # Two colours further apart than the tolerance that the 256-colour palette draws alike.
    a, b = (0, 100, 120), (0, 100, 150)
    assert b[2] - a[2] > TOLERANCE
    image = image_of([[a, b], [a, b]])
    assert len(half_block_rows(image)[0]) == 2  # truecolor: two colours
    (row,) = half_block_rows(image, ColorSystem.EIGHT_BIT)
    assert len(row) == 1 and row[0].text == "  "
    assert row[0].style.bgcolor.number is not None  # a palette colour, not an RGB


# ---- frames -----------------------------------------------------------------------------------


def test_a_frame_fills_the_pane_with_the_picture_and_its_name_row(tmp_path: Path) -> None:
    path = tmp_path / "a-rather-long-file-name-for-a-narrow-pane.png"
    picture(1, (200, 300)).save(path)
    frame = build_preview(path, path.name, (24, 12))
    assert isinstance(frame, Frame) and len(frame.strips) == 12
    assert all(strip.cell_length == 24 for strip in frame.strips)
    # 200x300 px in 24 x 22 px: 15 x 22 px (11 rows of cells), centred, then the name row.
    pixel_rows = [
        y
        for y, strip in enumerate(frame.strips)
        if any(seg.style is not None and seg.style.bgcolor is not None for seg in strip)
    ]
    assert pixel_rows == list(range(pixel_rows[0], pixel_rows[0] + 11))
    widths = {sum(len(seg.text) for seg in frame.strips[y] if seg.style) for y in pixel_rows}
    assert widths == {15}
    name_row = "".join(seg.text for seg in frame.strips[pixel_rows[-1] + 1])
    assert "a-rather" in name_row
    assert name_row.rstrip().endswith("…") and len(name_row) == 24  # cropped, one row


async def test_a_cached_preview_is_not_built_or_rendered_again(sample_copy, monkeypatch) -> None:
    builds: dict[str, int] = {}
    real = preview_module.build_preview

    def counting(path, label, box, system=ColorSystem.TRUECOLOR):
        builds[label] = builds.get(label, 0) + 1
        return real(path, label, box, system)

    monkeypatch.setattr(preview_module, "build_preview", counting)
    # Strips put on the pane's style by the UI thread (the workers do it for built frames).
    restyled_here: list[Strip] = []
    real_on_base = preview_module._on_base

    def on_base(strip, base):  # type: ignore[no-untyped-def]
        if threading.current_thread() is threading.main_thread():
            restyled_here.append(strip)
        return real_on_base(strip, base)

    monkeypatch.setattr(preview_module, "_on_base", on_base)
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app, preview=True)
        pane = app.preview.pixels
        first = app.image
        height = pane.content_size.height
        drawn = [pane.render_line(y) for y in range(height)]
        restyled_here.clear()
        for keys in (["]", "]", "]"], ["[", "[", "["], ["]", "["]):
            for key in keys:
                await pilot.press(key)
                await settle(pilot, app, preview=True)
                await pilot.pause(0.2)  # the neighbours' prefetch
        assert app.image == first
        assert restyled_here == []  # the built previews came ready to draw
        assert builds and all(n == 1 for n in builds.values()), builds
        # The very strips drawn the first time: nothing rendered again.
        assert all(pane.render_line(y) is drawn[y] for y in range(height))
