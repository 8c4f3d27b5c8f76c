"""The current image at the whole terminal's size (half-blocks, or real pixels where the
terminal speaks a graphics protocol: the pane's Painter), built off the UI thread like the
preview; `]` / `[` (the app's keys) move through the images, escape / f / q close."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen

from tui.app.widgets.preview import PreviewPane


class ImageScreen(ModalScreen[None]):
    """Full-screen view of one image; the app calls `show` when the current image changes."""

    DEFAULT_CSS = """
    ImageScreen { background: $background; }
    ImageScreen #full-image { width: 100%; height: 100%; border: none; padding: 0; }
    """
    BINDINGS = [
        Binding("escape,f,q", "close", "close", show=False),
    ]

    def __init__(self, root: Path, image: str, neighbours: list[str]) -> None:
        super().__init__()
        self._root = root
        self._first = (image, neighbours)

    def compose(self) -> ComposeResult:
        pane = PreviewPane(id="full-image")
        pane.root = self._root
        yield pane

    @property
    def pane(self) -> PreviewPane:
        return self.query_one("#full-image", PreviewPane)

    def on_mount(self) -> None:
        self.pane.show(*self._first)

    def show(self, image: str | None, neighbours: list[str] | None = None) -> None:
        """Draw `image` at the screen's size (prefetching `neighbours`)."""
        self.pane.show(image, neighbours)

    def action_close(self) -> None:
        self.dismiss(None)
