"""Help: the key table (from the bindings themselves) and what buckets and patterns do."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from tui.app.bindings import APP_BINDINGS, BUILTIN_KEYS, LIST_BINDINGS
from tui.core.buckets import ALL_BUCKETS, BUCKETS, PATTERN_TABLE
from tui.core.text import safe_text


def concepts() -> str:
    """What buckets and patterns do, as Markdown, from the core's tables."""
    lines = [
        "",
        "## Buckets (one key per tag, dataset-wide)",
        "| bucket | what it means |",
        "|---|---|",
        *(f"| **{b.letter}** {b.name} | {b.meaning} |" for b in ALL_BUCKETS),
        "",
        "## Patterns (`P` cycles)",
    ]
    # Columns: the buckets some pattern keeps (one every pattern removes says nothing).
    shown = [b for b in BUCKETS if any(b not in p.removes for p in PATTERN_TABLE)]
    lines += ["| | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
    for p in PATTERN_TABLE:
        cells = [
            ("removed" + (f": {p.why_removed}" if p.why_removed else ""))
            if b in p.removes
            else "kept"
            for b in shown
        ]
        lines.append(f"| **{p.name}** | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- **{p.name}**: {p.meaning}" for p in PATTERN_TABLE]
    lines += [
        "",
        "The trigger is always the first tag, exactly once. Nothing is lost: the original "
        "captions are kept in `.lora-curator/` and `lora-curator restore` puts them back "
        "byte for byte.",
    ]
    return "\n".join(lines) + "\n"


def key_table(keymap: dict[str, str]) -> str:
    """The key table as Markdown, with the user's remapped keys."""
    lines = ["# Keys", "", "| key | action |", "|---|---|"]
    for binding in [*APP_BINDINGS, *LIST_BINDINGS]:
        keys = keymap.get(binding.id or "", binding.key)
        shown = " ".join(
            k.replace("right_square_bracket", "]")
            .replace("left_square_bracket", "[")
            .replace("question_mark", "?")
            .replace("slash", "/")
            .replace("minus", "-")
            .replace("equals_sign", "=")
            .replace("underscore", "_")
            .replace("plus", "+")
            for k in keys.split(",")
        )
        # Keys come from the user's config file: shown escaped, never as table syntax.
        shown = safe_text(shown).replace("`", "'").replace("|", "\\|")
        lines.append(f"| `{shown}` | {binding.description} |")
    for keys, what in BUILTIN_KEYS:
        lines.append(f"| `{keys}` | {what} |")
    return "\n".join(lines) + "\n" + concepts()


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "close", show=False)]

    def __init__(self, keymap: dict[str, str]) -> None:
        super().__init__()
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Markdown(key_table(self.keymap))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
