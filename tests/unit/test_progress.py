"""The progress component: what a long command shows on stderr, on a terminal and in a log."""

from __future__ import annotations

import io

from tui import progress
from tui.progress import Reporter, plain_line


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_short_run_prints_nothing_in_a_log():
    clock, out = Clock(), io.StringIO()
    with Reporter(out, terminal=False, clock=clock) as report:
        for done in range(0, 1001, 100):
            clock.now += 0.05
            report("write", done, 1000)
    assert out.getvalue() == ""


def test_a_long_run_prints_a_line_now_and_then_and_one_at_the_end():
    clock, out = Clock(), io.StringIO()
    with Reporter(out, terminal=False, clock=clock) as report:
        report("write", 0, 1000)
        for done in range(1, 1001):
            clock.now += 0.125  # 8 files/s: 125 s in all
            report("write", done, 1000)
    lines = out.getvalue().splitlines()
    # Every 10 s, the last one when the work is done; never a line per file.
    assert len(lines) == 13
    assert lines[0] == "lora-curator: writing captions 80/1000 (8.0 files/s, 1 min 55 s left)"
    assert lines[1] == "lora-curator: writing captions 160/1000 (8.0 files/s, 1 min 45 s left)"
    assert lines[-1] == "lora-curator: writing captions 1000/1000 (8.0 files/s, done)"


def test_the_end_of_a_run_longer_than_a_second_gets_its_line():
    clock, out = Clock(), io.StringIO()
    with Reporter(out, terminal=False, clock=clock) as report:
        report("read", 1, 5000)
        clock.now += 2.5
        report("read", 5000, 5000)
    assert out.getvalue() == "lora-curator: reading captions 5000/5000 (2000 captions/s, done)\n"


def test_an_unknown_total_counts_what_was_found():
    assert plain_line("scan", 4000, 0, 2000.0) == (
        "scanning the dataset: 4000 files so far (2000 files/s)"
    )


def test_a_phase_name_is_shown_escaped():
    clock, out = Clock(), io.StringIO()
    with Reporter(out, terminal=False, clock=clock) as report:
        clock.now += 5
        report("\x1b]0;owned\x07[bold]x", 1, 2)
    assert "\x1b" not in out.getvalue()
    assert "\\x1b]0;owned\\x07[bold]x 1/2" in out.getvalue()


def test_the_rate_counts_from_the_start_of_the_phase():
    # e.g. measuring: the cached images are done at once; the rate is of those measured.
    clock, out = Clock(), io.StringIO()
    with Reporter(out, terminal=False, clock=clock) as report:
        report("measure", 900, 1000)
        clock.now += 20
        report("measure", 1000, 1000)
    assert out.getvalue().splitlines()[-1].endswith("1000/1000 (5.0 images/s, done)")


def test_on_a_terminal_a_bar_with_done_total_rate_and_time_left():
    clock, out = Clock(), io.StringIO()
    report = Reporter(out, terminal=True, clock=clock)
    report("write", 0, 1000)
    clock.now += 10
    report("write", 400, 1000)
    report.close()
    shown = out.getvalue()
    assert "writing captions" in shown and "400/1000" in shown
    assert "40 files/s" in shown and "15 s left" in shown
    assert shown.endswith("\x1b[2K")  # cleared: the command's summary line comes next


def test_on_a_terminal_text_is_never_markup_nor_raw_controls():
    clock, out = Clock(), io.StringIO()
    with Reporter(out, terminal=True, clock=clock) as report:
        report("[red]evil\x1b[2J", 1, 2)
        report.echo("a line [bold]as is[/bold]")
    shown = out.getvalue()
    assert "[red]evil\\x1b[2J" in shown and "\x1b[2J" not in shown
    assert "a line [bold]as is[/bold]" in shown


def test_plain_lines_follow_the_module_settings(monkeypatch):
    # The CLI tests make every step print with these (no clock to fake in a subprocess).
    monkeypatch.setattr(progress, "QUIET_FOR", 0.0)
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    clock, out = Clock(), io.StringIO()
    with Reporter(out, terminal=False, clock=clock) as report:
        for done in range(3):
            clock.now += 1
            report("check", done, 2)
    assert len(out.getvalue().splitlines()) == 3
