"""Edits survive a dropped link: the real program in a pseudo-terminal, killed for real."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from tui.core.workspace import Workspace

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")


def edits_committed(dataset: Path) -> int:
    """The edit cursor in the dataset's state, read as another process would."""
    db = dataset / ".lora-curator" / "state.sqlite3"
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
    except sqlite3.Error:
        return 0
    finally:
        conn.close()
    return int(row[0]) if row else 0


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def spawn_app(dataset: Path) -> pexpect.spawn:
    env = dict(os.environ, TERM="xterm-256color", TEXTUAL_ANIMATIONS="none")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "tui", str(dataset), "--no-mouse"],
        env=env,
        dimensions=(40, 120),
        timeout=30,
        # A hangup kills as when the link drops, even when this run ignores it (nohup).
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
    )
    child.expect("unsorted")  # the status bar: the dataset is open
    return child


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=["kill-9", "sighup"])
def test_edits_survive_a_killed_app(worked_example: Path, sig: signal.Signals) -> None:
    child = spawn_app(worked_example)
    try:
        keys = ["\t", "j", "1", "1", "P"]  # tags pane; bangs, black hair → trait; absorb
        for key in keys:
            child.send(key)
            time.sleep(0.05)
        child.send("t")
        time.sleep(0.3)
        child.send("kaede\r")
        # Each key's edit is in the state before the next key is handled.
        wait_for(lambda: edits_committed(worked_example) == 4)
        child.send(" ")  # remove the highlighted tag (blush) from this image only
        wait_for(lambda: edits_committed(worked_example) == 5)
        os.kill(child.pid, sig)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)

    # No manual clean-up: the lock died with the process, the next open just works.
    with Workspace.open(worked_example) as ws:
        s = ws.strategy
        assert s.trigger == "kaede" and s.pattern == "absorb"
        assert s.tags_in("trait") == ["bangs", "black hair"]
        assert ws.unsaved
        image = ws.images[0].image
        assert "blush" not in ws.image_tags(image)
    dry = subprocess.run(
        [sys.executable, "-m", "tui", "apply", str(worked_example), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert dry.stdout == (
        "10_kaede/window.png\tkaede, 1girl, closed eyes, cushion, grey pants, grey socks, "
        "orange shirt, short hair, simple background, sitting, smile, solo, window\n"
    )


def test_second_instance_is_refused_while_the_first_runs(worked_example: Path) -> None:
    child = spawn_app(worked_example)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "tui", "apply", str(worked_example)],
            capture_output=True,
            text=True,
        )
        assert second.returncode == 1
        assert "open in another lora-curator" in second.stderr
        assert str(child.pid) in second.stderr
        # Read-only commands still work beside it.
        dry = subprocess.run(
            [sys.executable, "-m", "tui", "tags", str(worked_example)],
            capture_output=True,
            text=True,
        )
        assert dry.returncode == 0 and "1girl" in dry.stdout
    finally:
        child.close(force=True)
