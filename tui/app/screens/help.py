"""Help: the keys (from the bindings themselves, with the user's keymap) grouped by what they
do, and what buckets and patterns do, compact enough to fit one 80×24 screen."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.app.bindings import APP_BINDINGS, LIST_BINDINGS
from tui.core.buckets import ALL_BUCKETS, PATTERN_TABLE
from tui.core.text import safe_text

# Width the help is laid out for: an 80-column terminal less the dialog's border and padding.
WIDTH = 76
# Binding id → group; a binding no group names (one added later) is shown under "more".
GROUPS: list[tuple[str, list[str]]] = [
    ("buckets", [f"bucket-{b.name}" for b in ALL_BUCKETS]),
    (
        "tags",
        ["accept-suggestion", "toggle-tag", "add-tag", "toggle-view", "rename-tag", "merge-tag"],
    ),
    (
        "images",
        [
            *("next-image", "previous-image", "full-screen", "filter", "concept-scope"),
            *("batch-add", "batch-remove"),
        ],
    ),
    ("tagger", ["general-threshold-down", "character-threshold-down", "tag-images"]),
    ("profile", ["cycle-pattern", "edit-trigger", "open-profile", "new-concept", "bucket-target"]),
    ("files", ["save", "undo", "redo", "adopt-disk", "keep-ours"]),
    ("reports", ["diagnostics", "guide", "help", "quit"]),
    ("move", ["cursor-down"]),
]
# Shown together with the entry before them (one key, one word).
JOINED = {
    "accept-all-suggestions": "accept-suggestion",
    "cursor-up": "cursor-down",
    "cursor-first": "cursor-down",
    "cursor-last": "cursor-down",
    "page-down": "cursor-down",
    "page-up": "cursor-down",
    "general-threshold-up": "general-threshold-down",
    "character-threshold-up": "character-threshold-down",
}
# Short words for the help (the Footer and the palette keep the bindings' own).
SHORT = {
    "accept-suggestion": "accept",
    "toggle-tag": "un/remove",
    "toggle-view": "all",
    "add-tag": "add",
    "next-image": "next",
    "previous-image": "previous",
    "full-screen": "full screen",
    "concept-scope": "a concept's",
    "new-concept": "new concept",
    "bucket-target": "keys→concept",
    "adopt-disk": "adopt disk",
    "keep-ours": "keep mine",
    "cursor-down": "move",
    "rename-tag": "rename",
    "merge-tag": "merge",
    "filter": "filter",
    "batch-add": "add to shown",
    "batch-remove": "remove from shown",
    "general-threshold-down": "general",
    "character-threshold-down": "character threshold",
    "tag-images": "tag the untagged",
}
# Keys Textual itself provides, as the help names them.
BUILTIN = [("tab", "pane"), ("esc", "close"), ("ctrl+p", "all actions")]
_KEY_NAMES = {
    "right_square_bracket": "]",
    "left_square_bracket": "[",
    "question_mark": "?",
    "slash": "/",
    "pagedown": "pgdn",
    "pageup": "pgup",
    "minus": "-",
    "equals_sign": "=",
    "underscore": "_",
    "plus": "+",
}


def _keys(binding: Binding, keymap: dict[str, str], first: bool = False) -> str:
    keys = [k.strip() for k in keymap.get(binding.id or "", binding.key).split(",")]
    # Keys come from the user's config file: shown escaped.
    return safe_text("/".join(_KEY_NAMES.get(k, k) for k in (keys[:1] if first else keys)))


def _binding_id(binding: Binding) -> str:
    return binding.id or {"page_down": "page-down", "page_up": "page-up"}.get(binding.action, "")


def _wrapped(label: str, entries: list[tuple[str, str]], out: Text) -> None:
    """One group: its label, then `key what` entries, wrapped at WIDTH under the first."""
    indent = 9
    out.append(f"{label:<{indent}}", style="bold")
    column = indent
    for i, (key, what) in enumerate(entries):
        width = len(key) + 1 + len(what) + (2 if i else 0)
        if i and column + width > WIDTH:
            out.append("\n" + " " * indent)
            column = indent
            width -= 2
        elif i:
            out.append("  ")
        out.append(key, style="bold reverse")
        out.append(" " + what)
        column += width
    out.append("\n")


def help_text(keymap: dict[str, str], note: str = "") -> Text:
    """The whole help: keys by group, then buckets and patterns; `note` ends it (one line)."""
    bindings = {_binding_id(b): b for b in [*APP_BINDINGS, *LIST_BINDINGS]}
    out = Text()
    named: set[str] = set(JOINED)
    for label, ids in GROUPS:
        entries = []
        for i in ids:
            if i not in bindings:
                continue
            together = [bindings[i], *(bindings[j] for j, to in JOINED.items() if to == i)]
            first = len(together) > 2  # the move keys: j/k/g/G/pgdn/pgup
            keys = "/".join(_keys(b, keymap, first) for b in together)
            if label == "buckets":
                bucket = next(b for b in ALL_BUCKETS if f"bucket-{b.name}" == i)
                entries.append((keys, f"{bucket.letter} {bucket.name}"))
            else:
                entries.append((keys, SHORT.get(i, bindings[i].description)))
        named.update(ids)
        if label == "move":
            entries += BUILTIN
        _wrapped(label, entries, out)
    more = [(_keys(b, keymap), b.description) for i, b in bindings.items() if i not in named]
    if more:
        _wrapped("more", more, out)
    out.append("Buckets", style="bold underline")
    out.append(" (a bucket key puts the tag in it, on every image)\n")
    for b in ALL_BUCKETS:
        out.append(b.name, style="bold")
        out.append(f": {b.meaning}\n")
    out.append("Patterns", style="bold underline")
    out.append(" (P cycles; the trigger first, once; never prompt absorbed traits again)\n")
    for p in PATTERN_TABLE:
        out.append(p.name, style="bold")
        removes = ", ".join(sorted(p.removes))
        # The first clause only: one row each at 80 columns (the guide says the rest).
        gist = p.meaning.split(". ")[0].split("; ")[0].rstrip(".")
        out.append(f" (removes {removes}): {gist}\n")
    if note:
        out.append(note, style="italic")
    return out.rstrip() or out


def key_table(keymap: dict[str, str], note: str = "") -> str:
    """The help as plain text (what tests and the README read)."""
    return help_text(keymap, note).plain


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "close", show=False)]

    def __init__(self, keymap: dict[str, str], note: str = "") -> None:
        super().__init__()
        self.keymap = keymap
        self.note = note

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help", id="help-scroll"):
            yield Static(help_text(self.keymap, self.note), id="help-text")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
