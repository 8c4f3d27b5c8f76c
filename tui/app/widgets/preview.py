"""The image preview: half-blocks (rich-pixels), decoded and built off the UI thread, cached,
neighbours prefetched, a placeholder while loading, a message (never a crash) for a bad file."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from rich.align import Align
from rich.console import Group, RenderableType
from rich.text import Text
from rich_pixels import Pixels
from textual import work
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static
from textual.worker import get_current_worker

from tui.app.messages import PreviewBuilt
from tui.app.widgets.graphics import painter_for
from tui.core.preview import PreviewError, fit_size, load_preview
from tui.core.text import safe_text

CacheKey = tuple[str, int, int]
# Wait this long after the last image switch before decoding (a held `]` decodes nothing).
DEBOUNCE_SECONDS = 0.06
CACHE_SIZE = 96


class PreviewPane(Static):
    """Shows one image; `show(path)` is cheap and never blocks."""

    BORDER_TITLE = "Preview"

    class Ready(Message):
        """A preview was built (for tests and benchmarks: the pane is settled)."""

        def __init__(self, image: str) -> None:
            super().__init__()
            self.image = image

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.root: Path | None = None
        # What the app last asked to show (the current image is the app's; this is only
        # what the pane draws, or waits for, and its neighbours to prefetch).
        self._shown: str | None = None
        self._neighbours: list[str] = []
        self.pending = False
        self._cache: OrderedDict[CacheKey, RenderableType] = OrderedDict()
        self._timer: Timer | None = None
        # Real pixels when the terminal speaks a graphics protocol (None: half-blocks only).
        self.graphics = painter_for(self)

    def _box(self) -> tuple[int, int]:
        """Pixels available: width × (2 × rows), one row kept for the file name."""
        w, h = self.content_size
        return max(1, w), max(2, (h - 1) * 2)

    def _key(self, image: str) -> CacheKey:
        w, h = self._box()
        return (image, w, h)

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
            self.update(Align.center(Text("no image", style="dim"), vertical="middle"))
            return
        cached = self._cache.get(self._key(image))
        if cached is not None:
            self._cache.move_to_end(self._key(image))
            self.pending = False
            self.update(cached, layout=False)
            self._timer = self.set_timer(DEBOUNCE_SECONDS, self._prefetch)
            return
        self.pending = True
        self.update(
            Align.center(
                Text(f"{safe_text(Path(image).name)}\nloading…", style="dim"), vertical="middle"
            )
        )
        self._timer = self.set_timer(DEBOUNCE_SECONDS, self._start)

    def update(self, content: RenderableType = "", *, layout: bool = True) -> None:
        super().update(content, layout=layout)
        if self.graphics is not None:  # real pixels: the painter sends what is now shown
            self.graphics.shown(content)

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
            self._build([self._shown, *self._neighbours], self._box())

    def _prefetch(self) -> None:
        self._timer = None
        todo = [n for n in self._neighbours if self._key(n) not in self._cache]
        if todo and self.root is not None:
            self._build(todo, self._box())

    @work(thread=True, exclusive=True, group="preview")
    def _build(self, images: list[str], box: tuple[int, int]) -> None:
        worker = get_current_worker()
        assert self.root is not None
        for image in images:
            if worker.is_cancelled:
                return
            key = (image, box[0], box[1])
            if key in self._cache:
                continue
            pixels = self.graphics.build(self.root / image, image, box) if self.graphics else None
            renderable = pixels or build_preview(self.root / image, image, box)
            self.post_message(PreviewBuilt(key, renderable))

    def on_preview_built(self, message: PreviewBuilt) -> None:
        key, renderable = message.key, message.renderable
        self._cache[key] = renderable
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        if self._shown is not None and key == self._key(self._shown):
            self.pending = False
            self.update(renderable, layout=False)
            self.post_message(self.Ready(self._shown))


def build_preview(path: Path, label: str, box: tuple[int, int]) -> RenderableType:
    """The renderable for one image: pixels and a line with its name and size."""
    name = safe_text(Path(label).name)
    try:
        preview = load_preview(path, box[0], box[1])
    except PreviewError as exc:
        return Align.center(
            Text.assemble((name, "bold"), "\n", (safe_text(str(exc)), "italic")),
            vertical="middle",
        )
    w, h = fit_size(preview.width, preview.height, box[0], box[1])
    pixels = Pixels.from_image(
        preview.image if preview.image.size == (w, h) else preview.image.resize((w, h))
    )
    frames = f" · {preview.frames} frames" if preview.frames > 1 else ""
    caption = Text(
        f"{name} · {preview.width}×{preview.height}{frames}", style="dim", justify="center"
    )
    return Align.center(Group(Align.center(pixels), caption), vertical="middle")
