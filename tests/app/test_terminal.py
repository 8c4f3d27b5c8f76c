"""Over SSH: colour depth, mouse tracking and themes, checked on the real program in a pty."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import pexpect

from tests.app.conftest import settle
from tui.app.app import CuratorApp


def screen_bytes(dataset: Path, *options: str) -> bytes:
    """Everything the app writes to its terminal in its first second on the dataset."""
    env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "tui", str(dataset), *options],
        env=env,
        dimensions=(40, 120),
        timeout=30,
    )
    try:
        child.expect("unsorted")
        out = child.before + child.after
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with contextlib.suppress(pexpect.TIMEOUT):
                out += child.read_nonblocking(65536, timeout=0.2)
        return out
    finally:
        child.sendcontrol("c")
        child.close(force=True)


def test_color_16_uses_only_the_16_base_colours(sample_copy: Path) -> None:
    truecolor = screen_bytes(sample_copy)
    assert b"\x1b[38;2;" in truecolor or b";38;2;" in truecolor
    sixteen = screen_bytes(sample_copy, "--color", "16")
    assert b"38;2;" not in sixteen and b"48;2;" not in sixteen
    assert b"38;5;" not in sixteen and b"48;5;" not in sixteen


def test_no_mouse_turns_mouse_tracking_off(sample_copy: Path) -> None:
    assert b"\x1b[?1003h" in screen_bytes(sample_copy)  # any-event tracking by default
    assert b"\x1b[?1003h" not in screen_bytes(sample_copy, "--no-mouse")


async def test_theme_option_and_unknown_theme(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy, theme="curator-light")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert app.theme == "curator-light"
        assert app.theme_variables["bucket-trait"] == "#af5f00"
    app = CuratorApp(sample_copy, theme="no-such-theme")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert app.theme == "curator-dark"
