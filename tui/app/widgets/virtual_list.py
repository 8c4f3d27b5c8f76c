"""A keyboard list drawn with the Line API: it costs what the screen shows, not the number of
rows, so the file list and the dataset's tag list stay fast at 100k rows.

A key redraws only the lines whose content changed: each row has a key (`row_key`, all that
its text depends on); the list remembers the key each visible line was drawn with, and a
refresh (`refresh_rows`) repaints only the lines whose key differs. Strips are cached by key,
so a row that scrolls back, or comes back on the next image, is not rendered again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Sequence
from typing import Generic, TypeVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.strip import Strip
from textual.widget import Widget

from tui.app.bindings import LIST_BINDINGS
from tui.app.widgets.scrollbar import ListScrollBar

Row = TypeVar("Row")


class VirtualList(ScrollView, Generic[Row], can_focus=True):
    """Rows of any kind; subclasses say how a row reads (`row_text`) and matches a filter."""

    BINDINGS = LIST_BINDINGS
    COMPONENT_CLASSES = {"virtual-list--cursor"}
    DEFAULT_CSS = """
    VirtualList { overflow-x: hidden; }
    VirtualList > .virtual-list--cursor { background: $primary 35%; text-style: bold; }
    VirtualList:focus > .virtual-list--cursor { background: $primary 70%; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Highlighted(Message, Generic[Row]):
        """The cursor moved to another row (`row`: of the list's row type)."""

        def __init__(self, sender: VirtualList[Row], row: Row | None) -> None:
            super().__init__()
            self.list = sender
            self.row = row

        @property
        def control(self) -> VirtualList[Row]:
            return self.list

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._all: Sequence[Row] = []
        self.rows: Sequence[Row] = []
        self.filter_text = ""
        # Rows outside the scope are hidden, whatever the filter (None: every row).
        self.scope: Collection[Row] | None = None
        # Strips by (row key, on the cursor, width); cleared when styles change (focus, theme).
        self._line_cache: dict[tuple[Hashable, bool, int], Strip] = {}
        # What each visible line was drawn with: row index -> (row key, on the cursor).
        self._drawn: dict[int, tuple[Hashable, bool]] = {}
        self._base_style = Style()
        self._cursor_style = Style()
        self.lines_rendered = 0  # row texts rendered (cache misses), for tests and benches
        # Called as the cursor lands on a row, before the frame is drawn: what the row shows
        # elsewhere (e.g. its image) comes in the same frame as the cursor, not one later
        # (the Highlighted message still follows).
        self.on_move: Callable[[Row | None], None] | None = None

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        # Textual's own property, making a ListScrollBar instead of a ScrollBar.
        bar = self._vertical_scrollbar
        if bar is None:
            bar = ListScrollBar(thickness=self.scrollbar_size_vertical)
            bar.display = False
            self._vertical_scrollbar = bar
            self.app._start_widget(self, bar)
        return bar

    # ---- content ----------------------------------------------------------------------------

    def row_text(self, row: Row, width: int) -> Text:  # pragma: no cover - abstract
        raise NotImplementedError

    def row_key(self, row: Row) -> Hashable:
        """All a row's text depends on (besides width and cursor): equal keys, equal lines.
        Subclasses whose rows read from other state add that state to the key."""
        return row

    def index_of(self, row: Row) -> int:
        """The row's index in `rows` (ValueError when it is not shown)."""
        return self.rows.index(row)  # type: ignore[union-attr]

    def row_matches(self, row: Row, needle: str) -> bool:
        return needle in str(row).casefold()

    def filtered(self, rows: Sequence[Row], needle: str) -> Sequence[Row]:
        """The rows a filter keeps (subclasses may do it without a call per row)."""
        return [r for r in rows if self.row_matches(r, needle)]

    def set_rows(self, rows: Sequence[Row], keep: Row | None = None) -> None:
        """Replace the rows; the cursor stays on `keep` (or the same row) when it is there."""
        current = keep if keep is not None else self.current
        self._all = rows
        self._apply_filter(current)

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._apply_filter(self.current)

    def set_scope(self, scope: Collection[Row] | None) -> None:
        """Show only these rows (None: all of them); the filter narrows them further."""
        self.scope = scope
        self._apply_filter(self.current)

    def _apply_filter(self, current: Row | None) -> None:
        needle = self.filter_text.casefold().strip()
        rows = self._all
        if self.scope is not None:
            scope = self.scope
            rows = [r for r in rows if r in scope]
        if needle:
            self.rows = self.filtered(rows, needle)
        else:
            self.rows = rows
        self._rows_changed()
        index = 0
        if current is not None:
            try:
                index = self.index_of(current)
            except ValueError:
                index = min(self.cursor, max(0, len(self.rows) - 1))
        # The cursor row first (so the refresh sees it), the Highlighted message after.
        self.set_reactive(VirtualList.cursor, self.validate_cursor(index))
        self._refresh_changed_lines()
        self.cursor = self.cursor

    def _rows_changed(self) -> None:
        """`rows` is another list: the scroll size follows. A layout of the screen (several
        ms) only when the scrollbar appears or goes; else the scrollbar is just updated."""
        size = Size(self.size.width, len(self.rows))
        old = self.virtual_size
        if size == old:
            return
        height = self.container_size.height
        if height and (old.height > height) == (size.height > height):
            self.set_reactive(Widget.virtual_size, size)
            self._scroll_update(size)
        else:
            self.virtual_size = size

    def _visible(self) -> range:
        top = self.scroll_offset.y
        return range(top, min(len(self.rows), top + self.scrollable_content_region.height))

    def refresh_rows(self) -> None:
        """The rows' content may have changed (an edit): redraw the visible lines whose key
        changed (and blank lines where rows went), nothing else."""
        self._refresh_changed_lines()

    def _refresh_changed_lines(self) -> None:
        drawn = self._drawn
        top = self.scroll_offset.y
        height = self.scrollable_content_region.height
        rows, cursor, key = self.rows, self.cursor, self.row_key
        for index in range(top, top + height):
            if index < len(rows):
                want: tuple[Hashable, bool] | None = (key(rows[index]), index == cursor)
            else:
                want = None
            if drawn.get(index) != want:
                self.refresh_lines(index)

    def redraw(self) -> None:
        """Redraw every visible line from scratch (styles changed: focus, theme, size)."""
        self._line_cache.clear()
        self._drawn.clear()
        self.refresh()

    @property
    def current(self) -> Row | None:
        if 0 <= self.cursor < len(self.rows):
            return self.rows[self.cursor]
        return None

    def theme_style(self, variable: str, extra: str = "") -> str:
        """A Rich style string from a theme variable (e.g. `bucket-trait`)."""
        color = self.app.theme_variables.get(variable, "")
        return f"{extra} {color}".strip()

    # ---- cursor -----------------------------------------------------------------------------

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.rows) - 1)) if self.rows else 0

    def watch_cursor(self, old: int, new: int) -> None:
        if old != new:
            self.refresh_lines(old)
            self.refresh_lines(new)
        self.scroll_to_region(Region(0, new, 1, 1), animate=False, immediate=True)
        if self.on_move is not None:
            self.on_move(self.current)
        self.post_message(self.Highlighted(self, self.current))

    def move_to(self, row: Row) -> bool:
        try:
            self.cursor = self.index_of(row)
        except ValueError:
            return False
        return True

    def action_cursor_down(self) -> None:
        self.cursor += 1

    def action_cursor_up(self) -> None:
        self.cursor -= 1

    def action_cursor_first(self) -> None:
        self.cursor = 0

    def action_cursor_last(self) -> None:
        self.cursor = len(self.rows) - 1

    def action_page_down(self) -> None:
        self.cursor += max(1, self.size.height - 1)

    def action_page_up(self) -> None:
        self.cursor -= max(1, self.size.height - 1)

    # ---- drawing ----------------------------------------------------------------------------

    def on_focus(self) -> None:
        self._cursor_restyled()

    def on_blur(self) -> None:
        self._cursor_restyled()

    def _cursor_restyled(self) -> None:
        """Focus changes how the cursor row is drawn, and only that row."""
        self._line_cache = {k: v for k, v in self._line_cache.items() if not k[1]}
        self._drawn.pop(self.cursor, None)
        self.refresh_lines(self.cursor)

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.rows))
        self.redraw()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line_cache.clear()  # a theme or CSS change: cached strips have old colours
        self._drawn.clear()

    def render_lines(self, crop: Region) -> list[Strip]:
        # Styles looked up once per redraw, not once per line (a walk up the DOM each).
        self._base_style = self.rich_style
        self._cursor_style = self._base_style + self.get_component_rich_style(
            "virtual-list--cursor"
        )
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        index = y + self.scroll_offset.y
        width = self.scrollable_content_region.width  # without the scrollbar
        if index >= len(self.rows):
            self._drawn.pop(index, None)
            return Strip.blank(width, self._base_style)
        row = self.rows[index]
        key = self.row_key(row)
        on_cursor = index == self.cursor
        self._drawn[index] = (key, on_cursor)
        cache_key = (key, on_cursor, width)
        cached = self._line_cache.get(cache_key)
        if cached is not None:
            return cached
        self.lines_rendered += 1
        text = self.row_text(row, width)
        text.no_wrap = True
        text.overflow = "ellipsis"
        text.truncate(width, overflow="ellipsis", pad=True)
        base = self._cursor_style if on_cursor else self._base_style
        segments = [
            Segment(seg.text, base + seg.style if seg.style else base)
            for seg in text.render(self.app.console)
            if seg.text != "\n"
        ]
        strip = Strip(segments, width).crop(0, width)
        if len(self._line_cache) > 2000:  # a few screens' worth; a strip is small
            self._line_cache.clear()
        self._line_cache[cache_key] = strip
        if len(self._drawn) > 4 * max(1, self.size.height):
            # Lines scrolled away: keep only what is on screen.
            shown = self._visible()
            self._drawn = {i: v for i, v in self._drawn.items() if i in shown}
        return strip
