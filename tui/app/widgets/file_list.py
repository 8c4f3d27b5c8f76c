"""The file list: every image, with what will change on save, warnings and unsorted tags."""

from __future__ import annotations

from rich.text import Text

from tui.app.themes import bucket_variable
from tui.app.widgets.virtual_list import VirtualList
from tui.core.query import QueryError, TagIndex
from tui.core.strategy import UNSORTED
from tui.core.text import safe_text
from tui.core.workspace import Workspace


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
        self._matched: frozenset[str] = frozenset()
        self._good_filter = ""  # the last filter that was a query: its images are shown

    def set_filter(self, text: str) -> None:
        """Filter by a query; a malformed one keeps the last good result (`query_error`)."""
        index = self.index
        if index is None or not text.strip():
            self.query_error = ""
            self._good_filter = text
            super().set_filter(text)
            return
        try:
            matched = frozenset(index.match(text))
        except QueryError as exc:
            self.query_error = str(exc)
            self.filter_text = text  # the box keeps what was typed; the rows stay
            return
        self.query_error = ""
        self._matched = matched
        self._good_filter = text
        super().set_filter(text)

    def row_matches(self, row: str, needle: str) -> bool:
        if self.index is None:
            return super().row_matches(row, needle)
        # Typed while the last good filter was empty: nothing filters yet.
        return not self._good_filter.strip() or row in self._matched

    def unsorted_count(self, image: str) -> int:
        ws = self.workspace
        assert ws is not None
        bucket = ws.strategy.effective_bucket
        return sum(1 for t in ws.image_tags(image) if bucket(t) == UNSORTED)

    def row_text(self, row: str, width: int) -> Text:
        ws = self.workspace
        if ws is None:
            return Text(safe_text(row))
        text = Text()
        text.append("●" if ws.will_change(row) else " ", style=self.theme_style("accent", "bold"))
        flagged = row in self.warnings or ws.by_image[row].caption in ws.changed_on_disk
        text.append("!" if flagged else " ", style=self.theme_style("error", "bold"))
        unsorted = self.unsorted_count(row)
        count = f"{unsorted:>3}" if unsorted else "   "
        name_width = max(1, width - 2 - len(count) - 1)
        shown = safe_text(row)  # a file name's control characters are escaped, not obeyed
        name = shown if len(shown) <= name_width else "…" + shown[-(name_width - 1) :]
        text.append(name.ljust(name_width))
        text.append(" ")
        text.append(count, style=self.theme_style(bucket_variable(UNSORTED), "bold"))
        return text
