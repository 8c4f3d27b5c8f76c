"""The image preview: half-blocks, decoded and built off the UI thread into ready `Strip`s,
cached, neighbours prefetched, a placeholder while loading, a message (never a crash) for a
bad file.

A preview is built once per (image, pane size) into a `Frame`: one `Strip` per row of the
pane, the picture centred and its name row under it. Showing a cached frame hands those same
strips to Textual's line API (`PreviewPixels.render_line`): nothing is rendered again, frame
after frame, and only the rows that differ from the last frame are sent.

Bytes on the wire (bench/wire.py): Textual's driver writes every segment with its full style
and a reset, so the half-block rows merge neighbouring cells of equal colours into one
segment, neighbours whose colours are within `TOLERANCE` merge too (in their middle colour),
and in 256 or 16 colours, neighbours the terminal's palette draws alike.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from PIL import Image
from rich.align import Align
from rich.color import Color, ColorSystem
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget
from textual.worker import get_current_worker

from tui.app.messages import PreviewBuilt
from tui.app.widgets.graphics import painter_for
from tui.core.preview import PreviewError, fit_size, load_preview
from tui.core.text import safe_text

CacheKey = tuple[str, int, int]
RGB = tuple[int, int, int]
# Wait this long after the last image switch before decoding (a held `]` decodes nothing).
DEBOUNCE_SECONDS = 0.06
CACHE_SIZE = 96
# Neighbouring cells within this many steps (of 255) per channel are drawn as one segment in
# their middle colour: no pixel moves by more than 8, the bound of rounding to 4 bits per
# channel. bench/wire.py, the preview alone of a photo at 120x40 truecolor: 45.8 KiB merging
# only equal cells, 38.9 / 31.9 KiB rounded to 5 / 4 bits per channel, 26.6 / 21.3 / 18.4 KiB
# with a tolerance of 8 / 12 / 16 (blank cells count as one colour); a whole `]` (one switch,
# everything the app sends) 35.9 KiB at 12, 31.8 KiB at 16.
TOLERANCE = 16
COLOR_SYSTEMS = {
    "truecolor": ColorSystem.TRUECOLOR,
    "256": ColorSystem.EIGHT_BIT,
    "standard": ColorSystem.STANDARD,
    "windows": ColorSystem.WINDOWS,
}
HALF_BLOCK = "▄"  # the lower half in the foreground colour, the upper in the background


class Frame:
    """A preview ready to draw: one `Strip` per row of the pane, built once.

    The strips carry no base style (blank cells take the pane's colours when drawn); the
    styled copy is made once per base style and kept (`lines`). Printing a frame with Rich
    gives its text (tests, diagnostics)."""

    def __init__(self, strips: list[Strip], width: int) -> None:
        self.strips = strips
        self.width = width
        self._styled: tuple[Style | None, list[Strip]] = (None, strips)
        # Real pixels (a PixelPreview, tui/app/widgets/graphics.py) the cells stand in for.
        self.graphic: object | None = None

    def lines(self, base: Style) -> list[Strip]:
        """The strips on the pane's `base` style (kept until the base changes)."""
        style, lines = self._styled
        if style != base:
            lines = [_on_base(strip, base) for strip in self.strips]
            self._styled = (base, lines)
        return lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        newline = Segment.line()
        for strip in self.strips:
            yield from strip
            yield newline


def _on_base(strip: Strip, base: Style) -> Strip:
    """`strip` on the pane's colours: text gets the base style, blank padding the background
    alone (its foreground would only cost bytes), pixels keep their own colours."""
    blank = Style(bgcolor=base.bgcolor)
    segments = []
    for seg in strip:
        style = seg.style
        if style is not None and style.bgcolor is not None:
            segments.append(seg)
        elif not style and seg.text.isspace():
            segments.append(Segment(seg.text, blank))
        else:
            segments.append(Segment(seg.text, base + style if style else base))
    return Strip(segments, strip.cell_length)


# ---- the half-block encoding -------------------------------------------------------------------


StyleOf = Callable[[RGB, RGB], Style]


def _palette_style_maker(system: ColorSystem) -> StyleOf:
    """A function (top, bottom) RGB → Style, in `system`'s colours; equal terminal colours give
    the same Style object, so neighbours that the terminal draws alike merge."""
    styles: dict[tuple[object, object], Style] = {}
    if system == ColorSystem.TRUECOLOR:

        def colour(rgb: RGB) -> object:
            return rgb

        def make(c: object) -> Color:
            return Color.from_rgb(*c)  # type: ignore[misc]

    else:
        # The terminal's palette (Rich's own downgrade, as Textual's driver would do it):
        # 256 colours or 16; the style then names the palette number itself.
        numbers: dict[RGB, int] = {}

        def colour(rgb: RGB) -> object:
            n = numbers.get(rgb)
            if n is None:
                n = numbers[rgb] = Color.from_rgb(*rgb).downgrade(system).number or 0
            return n

        def make(c: object) -> Color:
            return Color.from_ansi(c)  # type: ignore[arg-type]

    def style(top: RGB, bottom: RGB) -> Style:
        key = (colour(top), colour(bottom))
        found = styles.get(key)
        if found is None:
            bg = make(key[0])
            # Alike: a blank cell, the background alone.
            fg = None if key[1] == key[0] else make(key[1])
            found = Style(color=fg, bgcolor=bg)
            styles[key] = found
        return found

    return style


def half_block_rows(
    image: Image.Image,
    system: ColorSystem = ColorSystem.TRUECOLOR,
    tolerance: int = TOLERANCE,
) -> list[list[Segment]]:
    """`image` (RGB) as rows of half-block cells, two pixels per cell (upper: background,
    lower: `▄` in the foreground), in as few segments as the colours allow.

    Neighbouring cells whose colours span at most `tolerance` per channel are one run, drawn
    in the middle of that span (so no pixel is off by more than `ceil(tolerance / 2)`); a run
    whose upper and lower pixels are that close too is a blank on the background alone (a
    shorter escape code). Runs the terminal draws alike (`system`'s palette) merge as well.
    """
    w, h = image.size
    data = image.tobytes()
    style_of = _palette_style_maker(system)
    rows: list[list[Segment]] = []
    for y in range(0, h, 2):
        top_at = y * w * 3
        # An odd last row: the missing lower pixel is the upper one (a blank cell).
        bottom_at = top_at + w * 3 if y + 1 < h else top_at
        row: list[Segment] = []
        # The run so far: its length and each of its six channels' low and high.
        n = 0
        lo = hi = (0, 0, 0, 0, 0, 0)
        for x in range(w):
            i, j = top_at + 3 * x, bottom_at + 3 * x
            cell = (data[i], data[i + 1], data[i + 2], data[j], data[j + 1], data[j + 2])
            if n:
                new_lo = tuple(map(min, lo, cell))
                new_hi = tuple(map(max, hi, cell))
                if max(map(int.__sub__, new_hi, new_lo)) <= tolerance:
                    lo, hi, n = new_lo, new_hi, n + 1
                    continue
                _append_run(row, n, lo, hi, tolerance, style_of)
            lo = hi = cell
            n = 1
        if n:
            _append_run(row, n, lo, hi, tolerance, style_of)
        rows.append(row)
    return rows


def _append_run(
    row: list[Segment],
    n: int,
    lo: tuple[int, ...],
    hi: tuple[int, ...],
    tolerance: int,
    style_of: StyleOf,
) -> None:
    """One run of `n` cells, its colours the middle of each channel's span."""
    low = (min(lo[0], lo[3]), min(lo[1], lo[4]), min(lo[2], lo[5]))
    high = (max(hi[0], hi[3]), max(hi[1], hi[4]), max(hi[2], hi[5]))
    if max(high[0] - low[0], high[1] - low[1], high[2] - low[2]) <= tolerance:
        flat = ((low[0] + high[0]) // 2, (low[1] + high[1]) // 2, (low[2] + high[2]) // 2)
        style = style_of(flat, flat)
    else:
        mid = [(a + b) // 2 for a, b in zip(lo, hi, strict=True)]
        style = style_of((mid[0], mid[1], mid[2]), (mid[3], mid[4], mid[5]))
    if row and row[-1].style is style:  # the terminal draws both runs alike
        n += len(row[-1].text)
        row.pop()
    row.append(_cells(n, style))


def _cells(n: int, style: Style | None) -> Segment:
    blank = style is not None and style.color is None
    return Segment((" " if blank else HALF_BLOCK) * n, style)


# ---- frames -----------------------------------------------------------------------------------


def _centre(segments: list[Segment], used: int, width: int) -> Strip:
    left = max(0, (width - used) // 2)
    right = max(0, width - used - left)
    parts = []
    if left:
        parts.append(Segment(" " * left))
    parts.extend(segments)
    if right:
        parts.append(Segment(" " * right))
    return Strip(parts, width)


def picture_frame(
    rows: list[list[Segment]], pixel_width: int, caption: str, box: tuple[int, int]
) -> Frame:
    """The pane's rows: the half-block `rows` centred, the (dim, cropped) caption under them,
    the whole block in the middle of `box` (cells: width × height)."""
    width, height = box
    caption = caption if len(caption) <= width else caption[: max(0, width - 1)] + "…"
    body = [_centre(row, pixel_width, width) for row in rows]
    body.append(_centre([Segment(caption, Style(dim=True))], len(caption), width))
    top = max(0, (height - len(body)) // 2)
    blank = Strip([Segment(" " * width)], width)
    strips = [blank] * top + body[:height]
    strips += [blank] * (height - len(strips))
    return Frame(strips, width)


def text_frame(renderable: RenderableType, box: tuple[int, int]) -> Frame:
    """Any small Rich renderable (a message, a placeholder) as a frame of `box` cells."""
    width, height = max(1, box[0]), max(1, box[1])
    console = Console(width=width, height=height, file=io.StringIO(), color_system=None)
    options = console.options.update(width=width, height=height)
    lines = console.render_lines(renderable, options, pad=True)
    return Frame([Strip(line, width) for line in lines[:height]], width)


def message_frame(lines: Iterable[Text], box: tuple[int, int]) -> Frame:
    """Centred text lines in the middle of the pane."""
    return text_frame(Align.center(Text("\n").join(lines), vertical="middle"), box)


def build_preview(
    path: Path,
    label: str,
    box: tuple[int, int],
    system: ColorSystem = ColorSystem.TRUECOLOR,
) -> Frame:
    """The frame for one image in a pane of `box` cells (width × height): half-block pixels
    and a line with its name and size, or its name and why it cannot be shown."""
    width, height = max(1, box[0]), max(2, box[1])
    name = safe_text(Path(label).name)
    pixels = (width, (height - 1) * 2)  # one row kept for the file name
    try:
        preview = load_preview(path, *pixels)
    except PreviewError as exc:
        return message_frame(
            [Text(name, style="bold", justify="center"), Text(safe_text(str(exc)), "italic")],
            (width, height),
        )
    w, h = fit_size(preview.width, preview.height, *pixels)
    image = preview.image if preview.image.size == (w, h) else preview.image.resize((w, h))
    frames = f" · {preview.frames} frames" if preview.frames > 1 else ""
    caption = f"{name} · {preview.width}×{preview.height}{frames}"
    return picture_frame(half_block_rows(image, system), w, caption, (width, height))


# ---- the widget -------------------------------------------------------------------------------


class PreviewPixels(Widget):
    """Draws a `Frame` through the line API. A widget of its own inside the pane's border, so
    that redrawing its rows never sends the border again (Textual repaints a row of a widget
    from edge to edge)."""

    DEFAULT_CSS = "PreviewPixels { width: 1fr; height: 1fr; }"

    def __init__(self) -> None:
        super().__init__()
        self.frame: Frame | None = None

    def draw(self, frame: Frame) -> None:
        """Show `frame`: only its rows that differ from what is on the screen are sent (the
        blank rows above and below a picture, a name row alike, cost nothing)."""
        old, self.frame = self.frame, frame
        if old is None or old.width != frame.width or len(old.strips) != len(frame.strips):
            self.refresh()
            return
        width = frame.width
        rows = [
            Region(0, y, width, 1)
            for y, (was, new) in enumerate(zip(old.strips, frame.strips, strict=True))
            if was is not new and was != new
        ]
        if rows:
            self.refresh(*rows)

    _base = Style()

    def render_lines(self, crop: Region) -> list[Strip]:
        # The pane's style once per redraw, not once per row (each is a walk up the DOM:
        # ~30 of them were a fifth of an image switch's frame).
        self._base = self.rich_style
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        frame = self.frame
        width = self.content_size.width
        base = self._base
        if frame is None or frame.width != width:
            return Strip.blank(width, base)
        lines = frame.lines(base)
        return lines[y] if y < len(lines) else Strip.blank(width, base)


class PreviewPane(Widget):
    """Shows one image; `show(path)` is cheap and never blocks."""

    BORDER_TITLE = "Preview"

    class Ready(Message):
        """A preview was built (for tests and benchmarks: the pane is settled)."""

        def __init__(self, image: str) -> None:
            super().__init__()
            self.image = image

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.root: Path | None = None
        # What the app last asked to show (the current image is the app's; this is only
        # what the pane draws, or waits for, and its neighbours to prefetch).
        self._shown: str | None = None
        self._neighbours: list[str] = []
        self.pending = False
        self._cache: OrderedDict[CacheKey, Frame] = OrderedDict()
        self._timer: Timer | None = None
        self.pixels = PreviewPixels()
        # Keys a worker is building (workers run on their own threads: under the lock).
        self._in_flight: set[CacheKey] = set()
        self._lock = threading.Lock()
        self.builds = 0  # frames built (a cached one is never built again)
        # Real pixels when the terminal speaks a graphics protocol (None: half-blocks only).
        self.graphics = painter_for(self)

    def compose(self) -> ComposeResult:
        yield self.pixels

    def _cells(self) -> tuple[int, int]:
        w, h = self.content_size
        return max(1, w), max(2, h)

    def _colours(self) -> ColorSystem:
        """The terminal's colours, as the driver will write them (None: no colour at all)."""
        return COLOR_SYSTEMS.get(self.app.console.color_system or "", ColorSystem.TRUECOLOR)

    def _key(self, image: str) -> CacheKey:
        w, h = self._cells()
        return (image, w, h)

    def _draw(self, frame: Frame) -> None:
        self.pixels.draw(frame)
        if self.graphics is not None:  # real pixels: the painter sends what is now shown
            self.graphics.shown(frame.graphic)

    def _message(self, *lines: Text) -> None:
        self._draw(message_frame(lines, self._cells()))

    def show(self, image: str | None, neighbours: list[str] | None = None) -> None:
        """Draw `image` (from the cache at once, else after a short debounce, off the UI
        thread) and prefetch `neighbours`."""
        self._shown = image
        self._neighbours = neighbours or []
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if image is None:
            self.pending = False
            self._message(Text("no image", style="dim"))
            return
        key = self._key(image)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.pending = False
            self._draw(cached)
            self._timer = self.set_timer(DEBOUNCE_SECONDS, self._prefetch)
            return
        self.pending = True
        self._message(Text(safe_text(Path(image).name), style="dim"), Text("loading…", "dim"))
        self._timer = self.set_timer(DEBOUNCE_SECONDS, self._start)

    def on_unmount(self) -> None:
        if self.graphics is not None:
            self.graphics.clear()

    def drawn(self, image: str | None) -> bool:
        """Whether the pane shows `image`'s preview (not a placeholder)."""
        return image is not None and image == self._shown and not self.pending

    def on_resize(self) -> None:
        if self._shown is not None:
            self.show(self._shown, self._neighbours)

    def _start(self) -> None:
        self._timer = None
        if self.root is not None and self._shown is not None:
            images = [self._shown, *self._neighbours]
            self._build(images, self._cells(), self._colours(), self._base())

    def _prefetch(self) -> None:
        self._timer = None
        todo = [n for n in self._neighbours if self._key(n) not in self._cache]
        if todo and self.root is not None:
            self._build(todo, self._cells(), self._colours(), self._base())

    def _base(self) -> Style:
        """The style the pixels are drawn on (the frames' blank cells and text take it)."""
        return self.pixels.rich_style

    @work(thread=True, exclusive=True, group="preview")
    def _build(
        self, images: list[str], box: tuple[int, int], colours: ColorSystem, base: Style
    ) -> None:
        worker = get_current_worker()
        assert self.root is not None
        for image in images:
            if worker.is_cancelled:
                return
            key = (image, box[0], box[1])
            # A worker this one replaced may still be building it: its frame is on the way.
            with self._lock:
                if key in self._cache or key in self._in_flight:
                    continue
                self._in_flight.add(key)
            frame = None
            if self.graphics is not None:
                # The painter's box is the half-block one: width × 2 × the picture's rows.
                pixels = self.graphics.build(self.root / image, image, (box[0], (box[1] - 1) * 2))
                if pixels is not None:
                    frame = text_frame(pixels, box)
                    frame.graphic = pixels
            if frame is None:
                frame = build_preview(self.root / image, image, box, colours)
            # Styled for the pane here, off the UI thread: showing it costs no restyling.
            frame.lines(base)
            self.post_message(PreviewBuilt(key, frame))

    def on_preview_built(self, message: PreviewBuilt) -> None:
        key, frame = message.key, message.renderable
        assert isinstance(frame, Frame)
        self.builds += 1
        self._cache[key] = frame
        with self._lock:
            self._in_flight.discard(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        if self._shown is not None and key == self._key(self._shown):
            self.pending = False
            self._draw(frame)
            self.post_message(self.Ready(self._shown))
