"""Read-only reports over the dataset: diagnostics (findings naming images) and the prompt
guide. Diagnostics measure images off the UI thread; progress and findings come back by
message (tui/app/messages.py)."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Markdown, OptionList
from textual.widgets.option_list import Option

from tui.app.messages import FindingsReady, MeasureProgress
from tui.core.checks import Finding, run_checks
from tui.core.measures import measure_images
from tui.core.text import safe_text
from tui.core.workspace import Workspace


class DiagnosticsScreen(ModalScreen[str | None]):
    """Findings of `lora-curator check`; enter on an image jumps to it (dismiss → image)."""

    BINDINGS = [Binding("escape,d", "close", "close", show=False)]

    def __init__(self, ws: Workspace) -> None:
        super().__init__()
        self.ws = ws
        self.findings: list[Finding] | None = None
        self._targets: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog report"):
            yield Label("Diagnostics", classes="dialog-title")
            yield Label("measuring images…", id="diagnostics-progress")
            yield OptionList(id="findings")
            yield Label("enter: go to the image · escape: close", classes="dim")

    def on_mount(self) -> None:
        self.query_one("#findings", OptionList).focus()
        self._run()

    @work(thread=True, exclusive=True, group="diagnostics")
    def _run(self) -> None:
        def progress(done: int, total: int) -> None:
            # Posting does not wait for the screen: at most ~200 updates, not one per image.
            if done == total or done % max(1, total // 200) == 0:
                self.post_message(MeasureProgress(done, total))

        measures = measure_images(self.ws, progress)
        self.post_message(FindingsReady(run_checks(self.ws, measures)))

    def on_measure_progress(self, message: MeasureProgress) -> None:
        self.query_one("#diagnostics-progress", Label).update(
            f"measuring images… {message.done}/{message.total}"
        )

    def on_findings_ready(self, message: FindingsReady) -> None:
        findings = message.findings
        self.findings = findings
        problems = sum(f.severity == "problem" for f in findings)
        summary = (
            "no problem found"
            if not findings
            else f"{problems} problem(s), {len(findings) - problems} advice"
        )
        self.query_one("#diagnostics-progress", Label).update(summary)
        options = self.query_one("#findings", OptionList)
        for i, finding in enumerate(findings):
            head = Text()
            head.append(
                f"{finding.kind}  ", style="bold" if finding.severity == "problem" else "italic"
            )
            head.append(safe_text(finding.message))
            options.add_option(Option(head, id=f"f{i}", disabled=not finding.images))
            for j, image in enumerate(finding.images[:50]):
                key = f"f{i}-{j}"
                self._targets[key] = image
                options.add_option(Option(Text(f"    {safe_text(image)}", style="dim"), id=key))
            if len(finding.images) > 50:
                options.add_option(
                    Option(Text(f"    … and {len(finding.images) - 50} more"), disabled=True)
                )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        image = self._targets.get(event.option.id or "")
        if image is None and event.option.id and event.option.id.startswith("f"):
            index = int(event.option.id[1:])
            images = self.findings[index].images if self.findings else ()
            image = images[0] if images else None
        if image is not None:
            self.dismiss(image)

    def action_close(self) -> None:
        self.dismiss(None)


class GuideScreen(ModalScreen[None]):
    """The prompt guide (Markdown), as `lora-curator guide` prints it."""

    BINDINGS = [Binding("escape,ctrl+g,q", "close", "close", show=False)]

    def __init__(self, markdown: str) -> None:
        super().__init__()
        # The guide quotes tags and the trigger: control characters escaped, lines kept.
        self.markdown = safe_text(markdown, keep_lines=True)

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Markdown(self.markdown)

    def action_close(self) -> None:
        self.dismiss(None)
