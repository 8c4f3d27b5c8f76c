"""The file list: every image, with what will change on save, warnings and unsorted tags."""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Callable, Hashable, Iterator, Sequence
from itertools import compress

from rich.text import Text

from tui.app.themes import bucket_variable
from tui.app.widgets.virtual_list import VirtualList
from tui.core.query import QueryError, TagIndex
from tui.core.strategy import UNSORTED
from tui.core.text import safe_text
from tui.core.workspace import Workspace

# From this many images a query that needs a pass over the images or the tags (a new
# wildcard, name:, folder:, ...) runs in a worker; below, evaluating any costs a few ms.
THREAD_FROM = 50_000


class FoundRows(Sequence[str]):
    """A query's images in index order, read from its bytemap (TagIndex.evaluate) on demand:
    a keystroke costs one count per block of the bytemap, not a list of every image found
    (a 100k-image list is ~5 ms; the list shows 40 rows)."""

    BLOCK = 4096

    def __init__(self, images: Sequence[str], found: int) -> None:
        n = len(images)
        self._images = images
        self._bytes = found.to_bytes(n, "little")
        block, data = self.BLOCK, self._bytes
        self._before: list[int] = []  # matches before each block
        total = 0
        for start in range(0, n, block):
            self._before.append(total)
            total += data.count(1, start, start + block)
        self._len = total
        self._block: tuple[int, list[int]] = (-1, [])  # the last block read: its matches

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return list(self)[k]
        if k < 0:
            k += self._len
        if not 0 <= k < self._len:
            raise IndexError(k)
        b = bisect_right(self._before, k) - 1
        if self._block[0] != b:
            start = b * self.BLOCK
            end = start + self.BLOCK
            self._block = (b, list(compress(range(start, end), self._bytes[start:end])))
        return self._images[self._block[1][k - self._before[b]]]

    def __iter__(self) -> Iterator[str]:
        return compress(self._images, self._bytes)

    def has(self, p: int) -> bool:
        """Whether the image at index position `p` is found."""
        return 0 <= p < len(self._bytes) and self._bytes[p] == 1

    def rank(self, p: int) -> int:
        """How many found images come before index position `p`."""
        b = p // self.BLOCK
        return self._before[b] + self._bytes.count(1, b * self.BLOCK, p)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class FileList(VirtualList[str]):
    """Rows are image paths relative to the dataset. Its filter is a query of the query
    language (tui/core/query.py), evaluated over `index` on each keystroke."""

    BORDER_TITLE = "Files"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.workspace: Workspace | None = None
        self.warnings: dict[str, list[str]] = {}
        # Set by the app: built once per open or change of the images' tags.
        self.index: TagIndex | None = None
        self.query_error = ""  # why the filter typed last is not a query ("" = it is)
        # True while the app builds the index: a query typed meanwhile waits for it.
        self.index_pending = False
        # What the last good query found, in index order.
        self._found: Sequence[str] = []
        self._found_set: frozenset[str] | None = None  # the same as a set, made when needed
        self._good_filter = ""  # the last filter that was a query: its images are shown
        self._same_order: tuple[int, int, bool] = (0, 0, False)  # (id rows, id index, same)
        self._keys: dict[str, tuple[str, bool, bool, int]] = {}  # row -> its row_key
        # The filter whose outcome (rows or error) is shown: behind `filter_text` while a
        # worker evaluates it.
        self.shown_filter = ""
        # Set by the app: evaluates (text, index) off the UI thread, then calls apply_query.
        self.query_runner: Callable[[str, TagIndex], None] | None = None
        self.thread_from = THREAD_FROM
        # Held while a query is evaluated (a worker or this thread) or the index updated.
        self.query_lock = threading.Lock()

    def set_filter(self, text: str) -> None:
        """Filter by a query; a malformed one keeps the last good result (`query_error`).
        Over `thread_from` images or more the query is evaluated by `query_runner` (a worker
        of the app) and its result comes back through `apply_query`: typing never waits."""
        index = self.index
        if index is None and self.index_pending and text.strip():
            self.filter_text = text  # applied by the app once the index is in
            self.query_error = ""
            return
        if index is None or not text.strip():
            self.query_error = ""
            self._good_filter = text
            self.shown_filter = text
            super().set_filter(text)
            return
        self.filter_text = text  # the box shows it; the rows follow the query's outcome
        # In this frame when it is quick (plain tags, parts evaluated before) or the index
        # small; else in a worker. Never beside a worker still reading the index (the lock).
        quick = self.query_runner is None or index.n < self.thread_from or index.is_quick(text)
        if quick and self.query_lock.acquire(blocking=False):
            try:
                found, error = index.evaluate(text), None
            except QueryError as exc:
                found, error = None, exc
            finally:
                self.query_lock.release()
            self.apply_query(text, index, found, error)
            return
        assert self.query_runner is not None
        self.query_runner(text, index)

    def apply_query(
        self, text: str, index: TagIndex, found: int | None, error: QueryError | None
    ) -> bool:
        """Show a query's outcome (a bytemap of `index.evaluate`, or its error) unless the
        user typed on or the index changed meanwhile: then it is dropped (False)."""
        if text != self.filter_text or index is not self.index:
            return False
        self.shown_filter = text
        if error is not None or found is None:
            self.query_error = str(error)
            return True  # the rows stay: the last good result
        self.query_error = ""
        self._found = FoundRows(index.images, found)
        self._found_set = None
        self._good_filter = text
        super().set_filter(text)
        return True

    def index_of(self, row: str) -> int:
        # The usual lists, every image or a query's result in index order: the row's place
        # from the index and the result's bytemap, no scan of the rows.
        index = self.index
        if index is not None and self.scope is None and self._in_index_order(self._all):
            p = index.place(row)
            if p is None:
                raise ValueError(row)
            found = self._found
            if not self._good_filter.strip() or not isinstance(found, FoundRows):
                return p
            if not found.has(p):
                raise ValueError(row)
            return found.rank(p)
        return super().index_of(row)

    def _in_index_order(self, rows: Sequence[str]) -> bool:
        """True when `rows` are every image in the index's order (checked once per list)."""
        index = self.index
        assert index is not None
        rows_id, index_id, same = self._same_order
        if rows_id != id(rows) or index_id != id(index):
            same = list(rows) == index.images
            self._same_order = (id(rows), id(index), same)
        return same

    def filtered(self, rows: Sequence[str], needle: str) -> Sequence[str]:
        if self.index is None and self.index_pending:
            return list(rows)  # a query waits for the index; no other kind of filter
        if self.index is None:
            return super().filtered(rows, needle)
        if not self._good_filter.strip():
            return list(rows)
        if rows is self._all and self._in_index_order(rows):
            return self._found  # the usual case: the query's answer is the list
        # Another order, or a concept scope: one C-level pass (bench/query.py).
        if self._found_set is None:
            self._found_set = frozenset(self._found)
        return list(filter(self._found_set.__contains__, rows))

    def row_matches(self, row: str, needle: str) -> bool:
        if self.index is None:
            return super().row_matches(row, needle)
        # Typed while the last good filter was empty: nothing filters yet.
        if not self._good_filter.strip():
            return True
        if self._found_set is None:
            self._found_set = frozenset(self._found)
        return row in self._found_set

    def row_key(self, row: str) -> Hashable:
        # Kept until the next refresh_rows (the app calls it after every edit): a row's facts
        # cost a caption render, paid once per row shown, not once per frame or cursor move.
        key = self._keys.get(row)
        if key is not None:
            return key
        ws = self.workspace
        if ws is None:
            return (row,)
        flagged = row in self.warnings or ws.is_changed_on_disk(row)
        key = (row, ws.will_change(row), flagged, ws.unsorted_count(row))
        if len(self._keys) > 4096:
            self._keys.clear()
        self._keys[row] = key
        return key

    def refresh_rows(self) -> None:
        self._keys.clear()  # what the rows show may have changed
        super().refresh_rows()

    def row_text(self, row: str, width: int) -> Text:
        ws = self.workspace
        if ws is None:
            return Text(safe_text(row))
        _, changes, flagged, unsorted = self.row_key(row)  # type: ignore[misc]
        text = Text()
        text.append("●" if changes else " ", style=self.theme_style("accent", "bold"))
        text.append("!" if flagged else " ", style=self.theme_style("error", "bold"))
        count = f"{unsorted:>3}" if unsorted else "   "
        name_width = max(1, width - 2 - len(count) - 1)
        shown = safe_text(row)  # a file name's control characters are escaped, not obeyed
        name = shown if len(shown) <= name_width else "…" + shown[-(name_width - 1) :]
        text.append(name.ljust(name_width))
        text.append(" ")
        text.append(count, style=self.theme_style(bucket_variable(UNSORTED), "bold"))
        return text
