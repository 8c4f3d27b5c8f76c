"""The caption that will be written for the current image, and what the pattern removes."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.core.captions import escape_tag
from tui.core.checks import thresholds
from tui.core.text import safe_text
from tui.core.tokens import TokenCounter
from tui.core.workspace import Workspace


class CaptionView(Static):
    """Updated in the same frame as the key that changed it."""

    BORDER_TITLE = "Caption"
    # The caption as shown (plain text): what tests and the benchmark read back.
    shown = ""
    # The CLIP token counter (None: counts are off; the help screen says how to enable them).
    tokens: TokenCounter | None = None

    def show(self, ws: Workspace, image: str | None, notes: list[str] | None = None) -> None:
        if image is None:
            self.shown = ""
            self._update_if_new(Text("no image", style="dim"))
            return
        renderer = ws.renderer_for(image)
        tags = ws.image_tags(image)
        caption = renderer.caption_tags(tags)
        text = Text()
        if not caption:
            text.append("empty caption: this file will not be written", style="italic")
        leading = len(renderer.triggers)
        for i, tag in enumerate(caption):
            if i:
                text.append(safe_text(ws.strategy.caption.separator))
            # Tags and the triggers are the dataset's text: shown escaped, never obeyed.
            text.append(safe_text(tag), style="bold" if i < leading else "")
        implied = renderer.implied(tags)
        removed = [
            renderer.fate(t).tag
            for t in tags
            if not renderer.fate(t).kept and renderer.fate(t).tag not in implied
        ]
        if removed:
            text.append("   ")
            text.append("removed: ", style="dim italic")
            text.append(safe_text(", ".join(removed)), style="dim strike")
        if implied:
            # Struck like the tags the pattern removes, each with the tag that implies it.
            text.append("   ")
            text.append("implied: ", style="dim italic")
            shown = ", ".join(f"{tag} (by {by})" for tag, by in implied.items())
            text.append(safe_text(shown), style="dim strike")
        if self.tokens is not None and caption:
            fmt = ws.strategy.caption
            written = [escape_tag(t) for t in caption] if fmt.escape_parentheses else caption
            limit = int(thresholds(ws.strategy)["max_tokens"])
            length = self.tokens.length(written, fmt.separator, limit)
            text.append("\n")
            if length.cut:
                text.append(f"{length.tokens}/{limit} tokens, cut: ", style="bold")
                text.append(safe_text(", ".join(length.cut)), style="strike")
            else:
                text.append(f"{length.tokens}/{limit} tokens", style="dim")
        self.shown = text.plain
        for note in notes or []:
            text.append("\n! ", style="bold")
            text.append(safe_text(note), style="italic")
        self._update_if_new(text)

    _drawn: tuple[str, tuple[object, ...]] | None = None

    def _update_if_new(self, text: Text) -> None:
        """Redraw only when the text (or a style in it) differs from what is shown."""
        drawn = (text.plain, tuple(text.spans))
        if drawn != self._drawn:
            self._drawn = drawn
            self.update(text, layout=False)
