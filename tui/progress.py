"""Progress of the long commands, on stderr: the one component every command uses.

The core reports progress through plain callables, `(phase, done, total)` (total 0 when not
known yet, e.g. while scanning); `Reporter` is such a callable. It shows the phase, done/total,
the rate and the time left:

- stderr a terminal: Rich's progress bar (Rich comes with Textual), cleared when the work is
  done, so the command's own summary line follows as before;
- stderr not a terminal (a log, a pipe): a plain line now and then (`PLAIN_EVERY` seconds)
  and one at the end, none at all for work shorter than `QUIET_FOR` (short commands keep
  their stderr as it was).

Nothing ever goes to stdout, which keeps the output of `find`, `tags --json` or `apply
--dry-run` the same with or without a terminal. Phase names are the core's; one it does not
know is shown through `safe_text`, as any text that may come from a dataset.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from tui.core.text import safe_text

# phase → (what the line says, what is counted)
PHASES: dict[str, tuple[str, str]] = {
    "scan": ("scanning the dataset", "files"),
    "read": ("reading captions", "captions"),
    "changed": ("finding changed captions", "captions"),  # a reopen: one stat per caption
    "render": ("rendering captions", "captions"),
    "check": ("checking captions", "files"),
    "write": ("writing captions", "files"),
    "restore": ("restoring captions", "files"),
    "measure": ("measuring images", "images"),
    "tag": ("tagging", "images"),
}
PLAIN_EVERY = 10.0  # seconds between two plain lines
QUIET_FOR = 1.0  # work shorter than this prints no plain line
# A terminal bar is redrawn at most this often by the callback (Rich redraws on its own too).
BAR_EVERY = 0.05


def describe(phase: str) -> tuple[str, str]:
    """What a phase is called on screen, and what it counts."""
    return PHASES.get(phase, (safe_text(phase), "items"))


def _is_terminal(stream: TextIO) -> bool:
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real file
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


def format_rate(rate: float) -> str:
    """A rate as a person reads it: 1234 → "1234", 2.34 → "2.3"."""
    return f"{rate:.1f}" if rate < 10 else f"{rate:.0f}"


def format_left(seconds: float) -> str:
    """A duration left: "45 s", "3 min 05 s", "2 h 07 min"."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def time_left(done: int, total: int, rate: float) -> str:
    """ "22 s left", "done", or "" (no total, or no rate yet)."""
    if total <= 0:
        return ""
    if done >= total:
        return "done"
    return f"{format_left((total - done) / rate)} left" if rate > 0 else ""


def plain_line(phase: str, done: int, total: int, rate: float) -> str:
    """One plain progress line: `writing captions 1200/10000 (400 files/s, 22 s left)`."""
    label, unit = describe(phase)
    speed = f"{format_rate(rate)} {unit}/s"
    if total <= 0:
        return f"{label}: {done} {unit} so far ({speed})"
    left = time_left(done, total, rate)
    return f"{label} {done}/{total} ({speed}{', ' + left if left else ''})"


class Reporter:
    """A progress callback `(phase, done, total)` for the core; `close` (or the end of a
    `with` block) ends the display. Callbacks come from one thread (the core promises so)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        prefix: str = "lora-curator: ",
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.terminal = _is_terminal(self._stream) if terminal is None else terminal
        self._clock = clock
        self._prefix = prefix
        self._start = clock()
        self._last_line = self._start  # when the last plain line was printed
        self._phase = ""
        self._phase_start = self._start
        self._done = self._total = 0
        self._phase_done = 0  # done when the phase began
        self._shown = True  # the latest state is on screen (nothing to print at the end)
        self._bar: object | None = None  # rich.progress.Progress, made on first use
        self._task: object | None = None
        self._last_bar = 0.0
        self._unit = "items"
        self._closed = False

    # ---- the callback ----------------------------------------------------------------------

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self._closed:
            return
        now = self._clock()
        if phase != self._phase:
            # The rate counts from here: what was done before (cached) is not this speed.
            self._phase, self._phase_start, self._phase_done = phase, now, done
            new_phase = True
        else:
            new_phase = False
        self._done, self._total = done, total
        self._shown = False
        if self.terminal:
            self._update_bar(new_phase, now)
            return
        if now - self._start >= QUIET_FOR and now - self._last_line >= PLAIN_EVERY:
            self._print_plain(now)

    def step(self, phase: str) -> Callable[[int, int], None]:
        """This reporter as a `(done, total)` callback of one phase (measuring, tagging)."""
        return lambda done, total: self(phase, done, total)

    def echo(self, line: str) -> None:
        """Print a line of stderr while the work goes on (above the bar on a terminal); the
        caller makes it safe to show."""
        if self._bar is not None and not self._closed:
            self._bar.console.print(  # type: ignore[attr-defined]
                line, markup=False, highlight=False, emoji=False, soft_wrap=True
            )
        else:
            print(line, file=self._stream, flush=True)

    def _rate(self, now: float) -> float:
        """Items a second since the phase began."""
        elapsed = now - self._phase_start
        return (self._done - self._phase_done) / elapsed if elapsed > 0 else 0.0

    def _print_plain(self, now: float) -> None:
        line = plain_line(self._phase, self._done, self._total, self._rate(now))
        print(f"{self._prefix}{line}", file=self._stream, flush=True)
        self._last_line = now
        self._shown = True

    # ---- the terminal bar ------------------------------------------------------------------

    def _make_bar(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            Task,
            TaskProgressColumn,
            TextColumn,
        )
        from rich.text import Text

        class FieldColumn(ProgressColumn):
            """A field the reporter computes (the rate, the time left: as the plain lines
            give them, from the start of the phase)."""

            def __init__(self, name: str, style: str) -> None:
                super().__init__()
                self.name, self.style = name, style

            def render(self, task: Task) -> Text:
                return Text(str(task.fields.get(self.name, "")), style=self.style)

        console = Console(file=self._stream, force_terminal=True, highlight=False)
        self._bar = bar = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            FieldColumn("rate", "progress.data.speed"),
            FieldColumn("left", "progress.remaining"),
            console=console,
            transient=True,
            # stdout stays the command's: nothing of it is ever routed through the bar.
            redirect_stdout=False,
            redirect_stderr=False,
            get_time=self._clock,
        )
        bar.start()

    def _update_bar(self, new_phase: bool, now: float) -> None:
        if self._bar is None:
            self._make_bar()
        bar = self._bar
        total = self._total if self._total > 0 else None
        if new_phase:  # a task of its own: its rate and time left start afresh
            label, unit = describe(self._phase)
            if self._task is not None:
                bar.remove_task(self._task)  # type: ignore[attr-defined]
            self._task = bar.add_task(  # type: ignore[attr-defined]
                label, total=total, completed=self._done, rate="", left=""
            )
            self._unit = unit
        elif now - self._last_bar < BAR_EVERY and self._done != self._total:
            return
        self._last_bar = now
        rate = self._rate(now)
        bar.update(  # type: ignore[attr-defined]
            self._task,
            total=total,
            completed=self._done,
            rate=f"{format_rate(rate)} {self._unit}/s" if rate > 0 else "",
            left=time_left(self._done, self._total, rate),
        )

    # ---- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """End the display: the bar is cleared; a plain run longer than `QUIET_FOR` gets its
        last line (unless it was just printed)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.stop()  # type: ignore[attr-defined]
            return
        now = self._clock()
        if not self.terminal and self._phase and not self._shown and now - self._start >= QUIET_FOR:
            self._print_plain(now)

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
