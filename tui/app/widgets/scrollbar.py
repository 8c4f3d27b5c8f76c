"""The lists' vertical scrollbar: Textual's, drawn through the line API, repainting only the
rows a scroll changes.

Textual repaints every row of a scrollbar on any scroll, rendering the bar as a Rich
renderable each time. Over 100k rows the thumb is one cell: a `G`, or a `j` that scrolls the
list, changes two rows of the bar or none, yet paid for all of them and a Rich render (about
a millisecond of the key's frame). Here a row is repainted when its cell changes, and a cell
is drawn once per look (a handful: track above, thumb, its ends, track below).
"""

from __future__ import annotations

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.reactive import Reactive
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.strip import Strip

# ScrollBarRender's own fallbacks when the style has no colour.
BACK = Color.parse("#555555")
BAR = Color.parse("bright_magenta")


class ListScrollBar(ScrollBar):
    """A vertical ScrollBar with the same cells (ScrollBarRender.render_bar's), row by row."""

    position: Reactive[float] = Reactive(0, repaint=False)  # repainted row by row below

    def __init__(self, *, thickness: int = 1) -> None:
        super().__init__(vertical=True, name="vertical", thickness=thickness)
        self._cells: list[Segment] = []  # the rows being drawn (render_lines)
        self._base = Style()
        self._strips: dict[tuple[Segment, Style], Strip] = {}

    def bar_cells(self, position: float) -> list[Segment]:
        """The bar at `position`: one segment per row, as Textual's ScrollBar draws it."""
        renderer = self.render()
        assert isinstance(renderer, ScrollBarRender)
        style = renderer.style
        assert isinstance(style, Style)
        width, height = self.size
        bar = renderer.render_bar(
            size=height,
            virtual_size=renderer.virtual_size,
            window_size=renderer.window_size,
            position=position,
            thickness=width,
            vertical=True,
            back_color=style.bgcolor or BACK,
            bar_color=style.color or BAR,
        )
        return list(bar.segments)

    def watch_position(self, old: float, new: float) -> None:
        width, height = self.size
        if not width or not height:
            return
        before, after = self.bar_cells(old), self.bar_cells(new)
        rows = [
            Region(0, y, width, 1)
            for y, (was, now) in enumerate(zip(before, after, strict=True))
            if was != now
        ]
        if rows:
            self.refresh(*rows)

    def render_lines(self, crop: Region) -> list[Strip]:
        self._cells = self.bar_cells(self.position)
        self._base = self.visual_style.rich_style
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        base = self._base
        if y >= len(self._cells):
            return Strip.blank(self.size.width, base)
        cell = self._cells[y]
        key = (cell, base)
        strip = self._strips.get(key)
        if strip is None:
            # What Textual's pipeline makes of the renderable: the widget's style under it.
            text, style, _ = cell
            strip = Strip([Segment(text, base + style if base else style)])
            if len(self._strips) > 64:  # theme changes leave old colours behind
                self._strips.clear()
            self._strips[key] = strip
        return strip
