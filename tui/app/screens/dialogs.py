"""Small modal dialogs: a text prompt (trigger, add tag), a yes/no question, a picker."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from tui.core.text import safe_text


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line of text; dismisses with the text, or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "cancel", show=False)]

    def __init__(
        self,
        title: str,
        value: str = "",
        suggestions: list[str] | None = None,
        present: Collection[str] = (),
        present_note: str = "{} is already there",
    ) -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        # Completions are offered in this order: the first that fits what is typed wins.
        self.suggestions = suggestions
        # What is typed is checked against these (case-insensitively) as it is typed.
        self.present = {p.casefold() for p in present}
        self.present_note = present_note

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            # Titles quote file names: literal text, control characters escaped.
            yield Label(safe_text(self.title_text), classes="dialog-title", markup=False)
            suggester = (
                SuggestFromList(self.suggestions, case_sensitive=False)
                if self.suggestions
                else None
            )
            yield Input(value=self.value, suggester=suggester, id="prompt-input")
            yield Label("", id="prompt-note", markup=False)
            yield Label("enter: ok · escape: cancel · → accepts a completion", classes="dim")

    def on_input_changed(self, event: Input.Changed) -> None:
        note = ""
        typed = event.value.strip()
        if self.present and typed.casefold() in self.present:
            note = self.present_note.format(safe_text(typed))
        self.query_one("#prompt-note", Label).update(note)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question answered with `y` or `n` (escape = no)."""

    BINDINGS = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(safe_text(self.question), classes="dialog-title", markup=False)
            yield Label("y: yes · n: no", classes="dim")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


def _profile_prompt(path: Path) -> Text:
    """A picker row: the profile's name, then its file, dim (a name is literal text)."""
    prompt = Text(safe_text(path.stem))
    prompt.append("  ")
    prompt.append(safe_text(str(path)), style="dim")
    return prompt


class ProfilePicker(ModalScreen[Path | None]):
    """Pick a profile file: the library's, then the dataset's own `profiles/` folder."""

    BINDINGS = [Binding("escape", "cancel", "cancel", show=False)]

    def __init__(self, profiles: list[Path]) -> None:
        super().__init__()
        self.profiles = profiles

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Open a profile", classes="dialog-title")
            if self.profiles:
                yield OptionList(
                    *(Option(_profile_prompt(p), id=str(i)) for i, p in enumerate(self.profiles)),
                    id="profile-options",
                )
            else:
                yield Label(
                    "No profiles yet: save one with ctrl+s, "
                    "or create one with `lora-curator profile new NAME`."
                )
            yield Label("enter: open · escape: cancel", classes="dim")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.profiles[int(event.option.id or 0)])

    def action_cancel(self) -> None:
        self.dismiss(None)
