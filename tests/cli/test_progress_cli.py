"""Progress of the long commands goes to stderr only: a bar when stderr is a terminal (a real
pty), plain lines in a log, and stdout byte for byte the same either way."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from tui import progress

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")

KD_PROFILE = 'schema = 1\nname = "kd"\ntrigger = "kd"\n'
IMAGES = 60


@pytest.fixture
def root(make_dataset) -> Path:
    files: dict[str, str | None] = {}
    for i in range(IMAGES):
        files[f"10_kaede/img{i:02d}.png"] = None
        files[f"10_kaede/img{i:02d}.txt"] = f"smile, black hair, tag {i}\n"
    return make_dataset(files)


@pytest.fixture
def kd(tmp_path: Path) -> Path:
    path = tmp_path / "kd.toml"
    path.write_text(KD_PROFILE, encoding="utf-8")
    return path


def run(config: Path, *args: str | os.PathLike[str], stderr_tty: bool) -> tuple[int, bytes, str]:
    """`lora-curator ARGS`: stdout to a pipe, stderr to a pipe or to a pty (120x40)."""
    env = dict(os.environ, XDG_CONFIG_HOME=str(config), COLUMNS="120", TERM="xterm-256color")
    cmd = [sys.executable, "-m", "tui", *map(str, args)]
    if not stderr_tty:
        done = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
        return done.returncode, done.stdout, done.stderr.decode("utf-8", "replace")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the pty
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave
        )
        os.close(slave)
        out, _ = proc.communicate(timeout=120)
        reader.join(timeout=30)
    finally:
        os.close(master)
    return proc.returncode, out, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize(
    "args",
    [
        ("find", "{root}", "smile"),
        ("tags", "{root}", "--json"),
        ("apply", "{root}", "--profile", "{kd}", "--dry-run"),
    ],
    ids=["find", "tags --json", "apply --dry-run"],
)
def test_stdout_is_the_same_with_the_bar_on_stderr(args, root, kd, isolated_config):
    argv = [a.format(root=root, kd=kd) for a in args]
    code, plain_out, plain_err = run(isolated_config, *argv, stderr_tty=False)
    assert code == 0, plain_err
    code, tty_out, tty_err = run(isolated_config, *argv, stderr_tty=True)
    assert code == 0, tty_err
    assert tty_out == plain_out and plain_out  # byte for byte
    # The bar: reading, or (when the first run kept the state) finding changed captions.
    assert f"{IMAGES}/{IMAGES}" in tty_err
    assert "reading captions" in tty_err or "finding changed captions" in tty_err
    assert "captions" not in plain_err  # a short run in a log: no progress line


def test_apply_and_restore_show_their_bar_on_a_terminal(root, kd, isolated_config):
    code, out, err = run(isolated_config, "apply", root, "--profile", kd, stderr_tty=True)
    assert code == 0, err
    assert out == b""
    assert "writing captions" in err and f"{IMAGES}/{IMAGES}" in err and "files/s" in err
    assert err.rstrip().endswith(f"{IMAGES} written, 0 unchanged, 0 skipped")
    code, out, err = run(isolated_config, "restore", root, stderr_tty=True)
    assert code == 0, err
    assert out == b""
    assert "restoring captions" in err and f"{IMAGES}/{IMAGES}" in err
    assert err.rstrip().endswith(f"{IMAGES} restored, 0 unchanged, 0 failed")


def test_check_measures_with_the_shared_bar(root, kd, isolated_config):
    # (The tiny images do not decode: check reports them, on stdout, the same both times.)
    code, plain_out, _ = run(isolated_config, "check", root, "--profile", kd, stderr_tty=False)
    again, tty_out, tty_err = run(isolated_config, "check", root, "--profile", kd, stderr_tty=True)
    assert again == code and tty_out == plain_out and plain_out
    assert "measuring images…" not in tty_err  # the old hand-rolled line is gone
    assert "measuring images" in tty_err and f"{IMAGES}/{IMAGES}" in tty_err


# ---- plain lines (stderr not a terminal) -----------------------------------------------------


@pytest.fixture
def every_step(monkeypatch) -> None:
    """Plain lines as a long run prints them, at every step (the run here is short)."""
    monkeypatch.setattr(progress, "QUIET_FOR", 0.0)
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)


def progress_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "/s" in line]


def test_plain_lines_of_apply_restore_check_export(root, kd, cli_main, every_step):
    code, out, err = cli_main("apply", root, "--profile", kd)
    assert code == 0 and out == ""
    lines = progress_lines(err)
    assert f"lora-curator: reading captions {IMAGES}/{IMAGES}" in "\n".join(lines)
    assert lines[-1].startswith(f"lora-curator: writing captions {IMAGES}/{IMAGES} (")
    assert lines[-1].endswith(" files/s, done)")
    assert err.splitlines()[-1] == f"{IMAGES} written, 0 unchanged, 0 skipped"

    code, out, err = cli_main("restore", root)
    assert code == 0 and out == ""
    assert progress_lines(err)[-1].startswith(f"lora-curator: restoring captions {IMAGES}/")

    code, _, err = cli_main("check", root)
    assert f"lora-curator: measuring images {IMAGES}/{IMAGES}" in err

    code, out, err = cli_main("export", "kohya", root)
    assert code == 0 and "[general]" in out
    assert f"lora-curator: rendering captions {IMAGES}/{IMAGES}" in err


def test_plain_lines_never_reach_stdout(root, kd, cli_main, monkeypatch):
    quiet = {cmd: cli_main(*cmd) for cmd in (("tags", root, "--json"), ("find", root, "smile"))}
    monkeypatch.setattr(progress, "QUIET_FOR", 0.0)
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    for cmd, (code, out, err) in quiet.items():
        again = cli_main(*cmd)
        assert again[0] == code == 0
        assert again[1] == out  # stdout unchanged
        assert "reading captions" in again[2] or "finding changed captions" in again[2]
        assert "captions" not in err
