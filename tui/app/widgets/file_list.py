"""The file list: every image, with what will change on save, warnings and unsorted tags."""

from __future__ import annotations

from rich.text import Text

from tui.app.themes import bucket_variable
from tui.app.widgets.virtual_list import VirtualList
from tui.core.strategy import UNSORTED
from tui.core.text import safe_text
from tui.core.workspace import Workspace


class FileList(VirtualList[str]):
    """Rows are image paths relative to the dataset."""

    BORDER_TITLE = "Files"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.workspace: Workspace | None = None
        self.warnings: dict[str, list[str]] = {}

    def row_text(self, row: str, width: int) -> Text:
        ws = self.workspace
        if ws is None:
            return Text(safe_text(row))
        text = Text()
        text.append("●" if ws.will_change(row) else " ", style=self.theme_style("accent", "bold"))
        flagged = row in self.warnings or ws.is_changed_on_disk(row)
        text.append("!" if flagged else " ", style=self.theme_style("error", "bold"))
        unsorted = ws.unsorted_count(row)
        count = f"{unsorted:>3}" if unsorted else "   "
        name_width = max(1, width - 2 - len(count) - 1)
        shown = safe_text(row)  # a file name's control characters are escaped, not obeyed
        name = shown if len(shown) <= name_width else "…" + shown[-(name_width - 1) :]
        text.append(name.ljust(name_width))
        text.append(" ")
        text.append(count, style=self.theme_style(bucket_variable(UNSORTED), "bold"))
        return text
