"""Help: the key table (from the bindings themselves) and what buckets and patterns do."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from tui.app.bindings import APP_BINDINGS, BUILTIN_KEYS, LIST_BINDINGS
from tui.core.text import safe_text

CONCEPTS = """
## Buckets (one key per tag, dataset-wide)
| bucket | what it means |
|---|---|
| **T** trait | the character's permanent look: what the LoRA should learn |
| **C** context | what varies between images and should stay promptable |
| **F** flaw | defects (blurry, watermark...): kept on their own tag, prompt them away |
| **D** drop | never written (rating tags, wrong guesses) |
| **·** unsorted | not decided yet: the profile's `unsorted` setting says keep or drop |

## Patterns (`P` cycles)
| | trait | context | flaw |
|---|---|---|---|
| **keep-all** | kept | kept | kept |
| **absorb** | removed: the trigger absorbs it | kept | kept |
| **traits-only** | kept | removed | kept |

- **keep-all**: every feature learned weakly and separately; the trigger alone does little.
- **absorb**: the trigger alone reproduces the whole look. Do not prompt absorbed traits again:
  they stack (the four-ears case).
- **traits-only**: each trait tag can be summoned alone; the trigger alone has little effect.

The trigger is always the first tag, exactly once. Nothing is lost: the original captions are
kept in `.lora-curator/` and `lora-curator restore` puts them back byte for byte.
"""


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
            for k in keys.split(",")
        )
        # Keys come from the user's config file: shown escaped, never as table syntax.
        shown = safe_text(shown).replace("`", "'").replace("|", "\\|")
        lines.append(f"| `{shown}` | {binding.description} |")
    for keys, what in BUILTIN_KEYS:
        lines.append(f"| `{keys}` | {what} |")
    return "\n".join(lines) + "\n" + CONCEPTS


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
