"""Real pixels in the preview panes: kitty's graphics protocol, sixel, iTerm2's inline images.

A `PreviewPane` with a pixel protocol (tui/app/graphics.py chose it before the app started)
hands its builds and its shown renderables to a `Painter`:

- `build` (worker thread) decodes the image through the core at the pane's size in pixels
  (cells × the cell's pixel size, never the original), encodes it once and returns a
  renderable that fills the pane: blank cells (sixel, iTerm2) or kitty's Unicode placeholders
  where the image goes, and the caption line. None when the image cannot be decoded or
  encoded: the pane then builds its half-blocks (or its message for a bad file).
- `shown` (UI thread) sends it: kitty gets the image data once, as a virtual placement that
  the placeholder cells show (Textual's redraws are text only; the previous image is deleted
  from the terminal); sixel and iTerm2 images are drawn at the pane's cells after the frame
  that blanked them, again only when a screen over the pane closes (its cells were redrawn).

Everything goes through Textual's driver, in order with its frames (never straight to
stdout from another thread). No error here ever reaches the user as a traceback.
"""

from __future__ import annotations

import base64
import functools
import io
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from random import randint
from typing import TYPE_CHECKING

from PIL import Image
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from tui.app.graphics import Choice, cell_pixels
from tui.core.preview import PreviewError, load_preview
from tui.core.text import safe_text

if TYPE_CHECKING:
    from textual.screen import Screen
    from textual.widget import Widget

PLACEHOLDER = "\U0010eeee"
# Base64 bytes per kitty graphics command (the protocol's limit).
CHUNK = 4096
JPEG_QUALITY = 90
# The most rows or columns a kitty image can span (the pane fits it inside).
MAX_SPAN = 129


@functools.cache
def placeholder_diacritics() -> tuple[str, ...]:
    """The combining marks kitty's placeholders number rows and columns with: the protocol
    takes Unicode's combining class 230 marks that have no decomposition and are part of none.
    Its table is fixed at Unicode 6.0; Python's Unicode is newer, but every such mark added
    since lies above the 129th (U+082D), so the first 129 are exact (a test compares them
    with textual-image's copy of kitty's table)."""
    parts: set[int] = set()
    marks = []
    for code in range(0x30000):  # past the last decomposition that holds such a mark
        char = chr(code)
        decomposition = unicodedata.decomposition(char)
        if decomposition and not decomposition.startswith("<"):
            parts.update(int(p, 16) for p in decomposition.split())
        if unicodedata.combining(char) == 230 and not decomposition:
            marks.append(code)
    exact = [c for c in marks if c not in parts and c < 0x898]
    return tuple(chr(c) for c in exact[:MAX_SPAN])


_ids = count(randint(1, 0xFFFF) << 8)


def _next_id() -> int:
    """A 24-bit image id (placeholders carry it as their truecolor foreground; never 0)."""
    return next(_ids) % 0xFFFFFF + 1


def tmux_wrap(sequence: str) -> str:
    """`sequence` inside tmux's DCS passthrough (its escapes doubled)."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def kitty_commands(image: Image.Image, image_id: int, cols: int, rows: int) -> list[str]:
    """Transmit `image` as PNG under `image_id` (chunked, replies off) and make a virtual
    placement of cols × rows cells for the placeholders to show."""
    buf = io.BytesIO()
    image.save(buf, "PNG")
    data = base64.standard_b64encode(buf.getvalue()).decode("ascii")
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [""]
    commands = []
    for n, chunk in enumerate(chunks):
        more = 1 if n < len(chunks) - 1 else 0
        keys = f"a=t,f=100,i={image_id},q=2,m={more}" if n == 0 else f"m={more}"
        commands.append(f"\x1b_G{keys};{chunk}\x1b\\")
    commands.append(f"\x1b_Ga=p,U=1,i={image_id},c={cols},r={rows},q=2\x1b\\")
    return commands


def kitty_delete(image_id: int) -> str:
    """Delete the image and its placements from the terminal, freeing its data."""
    return f"\x1b_Ga=d,d=I,i={image_id},q=2\x1b\\"


def iterm2_command(image: Image.Image, cols: int, rows: int) -> str:
    """iTerm2's inline image (OSC 1337) filling cols × rows cells; JPEG keeps it small."""
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=JPEG_QUALITY)
    data = buf.getvalue()
    encoded = base64.standard_b64encode(data).decode("ascii")
    return (
        f"\x1b]1337;File=inline=1;size={len(data)};width={cols};height={rows};"
        f"preserveAspectRatio=0:{encoded}\x07"
    )


def sixel_command(image: Image.Image) -> str:
    """The image as sixel, by textual-image's encoder (its module that asks the terminal
    nothing when imported)."""
    from textual_image._sixel import image_to_sixels

    return image_to_sixels(image)


@dataclass(frozen=True)
class Layout:
    """Where the image goes in a pane of `width` × `height` cells: cols × rows cells at
    (left, top), the caption on the row below it."""

    width: int
    height: int
    cols: int
    rows: int

    @property
    def left(self) -> int:
        return (self.width - self.cols) // 2

    @property
    def top(self) -> int:
        return max(0, (self.height - self.rows - 1) // 2)


def fit_cells(
    image_w: int, image_h: int, cols: int, rows: int, cell: tuple[int, int]
) -> tuple[int, int]:
    """The cells an image of image_w × image_h pixels fills inside cols × rows cells of
    cell[0] × cell[1] pixels, keeping its aspect (at least one cell)."""
    scale = min(cols * cell[0] / max(1, image_w), rows * cell[1] / max(1, image_h))
    return (
        min(cols, max(1, round(image_w * scale / cell[0]))),
        min(rows, max(1, round(image_h * scale / cell[1]))),
    )


class PixelPreview:
    """The pane's renderable: blank or placeholder cells where the image goes, the caption
    below; `commands` are what the terminal gets (once) to show the pixels."""

    def __init__(
        self,
        protocol: str,
        layout: Layout,
        size: tuple[int, int],
        commands: list[str],
        caption: Text,
        image_id: int = 0,
    ) -> None:
        self.protocol = protocol
        self.layout = layout
        self.size = size  # pixels sent
        self.commands = commands
        self.caption = caption
        self.image_id = image_id
        self.sent = False  # kitty: the terminal holds the image now

    def _image_row(self, row: int) -> Iterator[Segment]:
        cols = self.layout.cols
        if self.protocol != "kitty":
            yield Segment(" " * cols)
            return
        i = self.image_id
        style = Style(color=f"rgb({(i >> 16) & 255},{(i >> 8) & 255},{i & 255})")
        marks = placeholder_diacritics()
        yield Segment("".join(PLACEHOLDER + marks[row] + marks[c] for c in range(cols)), style)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lay = self.layout
        width = min(options.max_width, lay.width)
        blank = Segment(" " * width)
        caption = self.caption.copy()
        caption.truncate(width, overflow="ellipsis")
        caption_lines = console.render_lines(caption, options.update(width=width, height=1))
        for y in range(lay.height):
            if lay.top <= y < lay.top + lay.rows:
                yield Segment(" " * lay.left)
                yield from self._image_row(y - lay.top)
                yield Segment(" " * max(0, width - lay.left - lay.cols))
            elif y == lay.top + lay.rows and caption_lines:
                yield from caption_lines[0]
            else:
                yield blank
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.layout.width, self.layout.width)


def build_pixels(
    path: Path, label: str, box: tuple[int, int], choice: Choice, cell: tuple[int, int]
) -> PixelPreview | None:
    """The pixel renderable for one image in a pane whose half-block box is `box` (width ×
    2 × image rows); None when it cannot be decoded or encoded (the caller falls back)."""
    width, rows_free = box[0], max(1, box[1] // 2)
    cols_free = width
    if choice.protocol == "kitty":
        cols_free, rows_free = min(cols_free, MAX_SPAN), min(rows_free, MAX_SPAN)
    try:
        preview = load_preview(path, cols_free * cell[0], rows_free * cell[1])
        cols, rows = fit_cells(preview.width, preview.height, cols_free, rows_free, cell)
        size = (cols * cell[0], rows * cell[1])
        if choice.protocol != "sixel" and preview.width * preview.height < size[0] * size[1]:
            # Smaller than its cells: kitty and iTerm2 scale it up themselves (sixel cannot),
            # so the original's pixels are all that crosses the link.
            size = (preview.width, preview.height)
        image = preview.image
        if image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        image_id = 0
        if choice.protocol == "kitty":
            image_id = _next_id()
            commands = kitty_commands(image, image_id, cols, rows)
        elif choice.protocol == "iterm2":
            commands = [iterm2_command(image, cols, rows)]
        else:
            commands = [sixel_command(image)]
    except PreviewError:
        return None
    except Exception:  # an encoder's failure: half-blocks instead
        return None
    if choice.passthrough:
        commands = [tmux_wrap(c) for c in commands]
    frames = f" · {preview.frames} frames" if preview.frames > 1 else ""
    caption = Text(
        f"{safe_text(Path(label).name)} · {preview.width}×{preview.height}{frames}",
        style="dim",
        justify="center",
    )
    layout = Layout(width, rows_free + 1, cols, rows)
    return PixelPreview(choice.protocol, layout, size, commands, caption, image_id)


class Painter:
    """Sends one pane's images to the terminal (see the module's docstring)."""

    def __init__(self, pane: Widget, choice: Choice) -> None:
        self.pane = pane
        self.choice = choice
        self._shown: PixelPreview | None = None
        self._listening = False

    def build(self, path: Path, label: str, box: tuple[int, int]) -> RenderableType | None:
        """Worker thread: the pixel renderable, or None for the half-block path."""
        return build_pixels(path, label, box, self.choice, cell_pixels())

    def _write(self, data: str) -> None:
        driver = getattr(self.pane.app, "_driver", None)
        if data and driver is not None:
            driver.write(data)
            driver.flush()

    def _on_screen(self) -> bool:
        pane = self.pane
        try:
            return (
                pane.is_mounted
                and pane.screen is pane.app.screen
                and pane.display
                and pane.content_region.area > 0
            )
        except Exception:
            return False

    def shown(self, renderable: RenderableType | None) -> None:
        """UI thread: the pane now shows `renderable` (a PixelPreview, or anything else)."""
        try:
            if not self._listening and renderable is not None:
                self._listening = True
                self.pane.app.screen_change_signal.subscribe(self.pane, self._screen_changed)
            new = renderable if isinstance(renderable, PixelPreview) else None
            if new is not None and new is self._shown:
                return  # shown again (the cursor's frame, then the build's): already sent
            old, self._shown = self._shown, new
            if old is not None and old is not new and old.protocol == "kitty" and old.sent:
                self._write(kitty_delete(old.image_id))
                old.sent = False
            self._send()
        except Exception:
            pass

    def _send(self) -> None:
        shown = self._shown
        if shown is None or not self._on_screen():
            return  # the pane is covered: sent when its screen is back
        if shown.protocol == "kitty":
            if not shown.sent:
                shown.sent = True
                self._write("".join(shown.commands))
        else:
            self.pane.call_after_refresh(self._draw, shown)

    def _draw(self, shown: PixelPreview) -> None:
        """After the frame that drew the pane's (blank) cells: the pixels over them."""
        try:
            if shown is not self._shown or not self._on_screen():
                return
            region = self.pane.content_region
            lay = shown.layout
            if lay.width > region.width or lay.rows + 1 > region.height:
                return  # the pane shrank: a new build is on its way
            x, y = region.x + lay.left, region.y + lay.top
            # Save the cursor, draw at the image's top-left cell, restore.
            self._write(f"\x1b7\x1b[{y + 1};{x + 1}H{shown.commands[0]}\x1b8")
        except Exception:
            pass

    def _screen_changed(self, screen: Screen) -> None:
        try:
            if screen is self.pane.screen:
                self._send()
        except Exception:
            pass

    def clear(self) -> None:
        """The pane goes: free its kitty image in the terminal."""
        self.shown(None)


def painter_for(pane: Widget) -> Painter | None:
    """A painter for `pane` when the app uses a pixel protocol, else None."""
    from tui.app import graphics

    choice = graphics.current()
    return Painter(pane, choice) if choice.pixels else None


__all__ = ["Painter", "PixelPreview", "build_pixels", "painter_for", "tmux_wrap"]
