"""Which graphics protocol the preview uses: chosen once, before Textual starts.

Detection, never guessing: in `auto`, with the optional `graphics` extra installed, the
terminal is asked (kitty's graphics query, then DA1: one round trip) and only its answer
counts. That question can only be asked before Textual starts (Textual's input thread would
take the answer), only on a terminal, and only in `auto`: a forced protocol asks nothing.
(textual-image would ask at import with a 0.1 s timeout, too short over a slow SSH link: its
renderables are never imported here; the app uses its sixel encoder.)

Inside tmux the answers come from tmux itself, which is what we want: a tmux ≥ 3.4 built
with sixel draws sixel itself and says 4 in its DA1 answer (whatever terminal it is attached
to: whether it passes sixel on is asked of tmux too, `client_termfeatures`), and it never
answers a kitty query (it does not know the protocol). Passthrough to the outer terminal is never
assumed; forcing `kitty` or `iterm2` inside tmux wraps the images in tmux's passthrough
(which then needs `set -g allow-passthrough on`).

This module imports no Textual: `tui.app.main` uses it before importing the app.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

MODES = ("auto", "kitty", "sixel", "iterm2", "halfblocks")
PIXEL_PROTOCOLS = ("kitty", "sixel", "iterm2")
INSTALL = "pip install 'lora-curator[graphics]'"
# Cell size in pixels when the terminal does not report its pixel size (a VT340's, as
# textual-image assumes too): only the detail of the image sent depends on it.
DEFAULT_CELL = (10, 20)


@dataclass(frozen=True)
class Answers:
    """What the terminal (or the multiplexer it runs in) answered to the queries."""

    sixel: bool = False
    kitty: bool = False
    # Inside tmux: whether tmux passes sixel on to the terminal it is attached to (its
    # `client_termfeatures` has `sixel`); None when tmux did not say.
    tmux_sixel: bool | None = None


@dataclass(frozen=True)
class Choice:
    """The protocol the previews use, and what to tell the user about it."""

    protocol: str = "halfblocks"
    # Wrap every graphics command in tmux's DCS passthrough (forced kitty/iterm2 in tmux).
    passthrough: bool = False
    # One line for stderr before the app starts (a forced protocol that cannot be used).
    message: str = ""
    # How to get real pixels, for the help screen (auto without the extra).
    hint: str = ""

    @property
    def pixels(self) -> bool:
        return self.protocol in PIXEL_PROTOCOLS


def in_tmux(env: Mapping[str, str]) -> bool:
    return bool(env.get("TMUX"))


def needs_query(flag: str, importable: bool, tty: bool, env: Mapping[str, str]) -> bool:
    """Whether to ask the terminal: only in auto, with the extra, on a terminal that answers
    escape sequences at all (`TERM=dumb` does not)."""
    return flag == "auto" and importable and tty and env.get("TERM", "") != "dumb"


def choose(
    flag: str,
    importable: bool,
    tty: bool,
    env: Mapping[str, str],
    answers: Answers | None,
    color: str = "auto",
) -> Choice:
    """The protocol for `--graphics flag`, given whether the `graphics` extra imports, whether
    stdout is a terminal, the environment (TMUX, TERM) and the terminal's answers (None when it
    was not asked). `color` is the `--color` option: kitty's placeholders name the image by a
    24-bit colour, which a 256- or 16-colour screen cannot carry."""
    if flag == "halfblocks" or not tty:
        return Choice()
    if flag in PIXEL_PROTOCOLS:
        if not importable:
            return Choice(
                message=f"--graphics {flag} needs the optional graphics support: "
                f"{INSTALL}; showing half-blocks",
            )
        if flag == "kitty" and color in ("256", "16"):
            return Choice(
                message=f"--graphics kitty needs truecolor (not --color {color}); "
                "showing half-blocks",
            )
        # tmux draws sixel itself; kitty and iTerm2 images must pass through it.
        return Choice(flag, passthrough=in_tmux(env) and flag != "sixel")
    # auto
    if not importable:
        return Choice(hint=f"real pixels in kitty, iTerm2 and sixel terminals: {INSTALL}")
    if answers is None:
        return Choice()
    if answers.sixel and (not in_tmux(env) or answers.tmux_sixel):
        # First, as textual-image does: terminals that speak both (WezTerm, Konsole) do not
        # draw kitty's Unicode placeholders, and kitty itself does not speak sixel. Inside
        # tmux the DA1 answer is tmux's own (a tmux built with sixel always says 4): it draws
        # sixel itself, but passes it on only to a terminal that has it, which tmux says.
        return Choice("sixel")
    if answers.kitty and not in_tmux(env) and color not in ("256", "16"):
        return Choice("kitty")
    # No answer, or a kitty answer inside tmux (it cannot be tmux's own: never assume
    # passthrough): half-blocks.
    return Choice()


def extra_importable() -> bool:
    """Whether the `graphics` extra is installed (its package's own module sends nothing)."""
    try:
        import textual_image  # noqa: F401
    except ImportError:
        return False
    return True


# Kitty's graphics query (a 1×1 image, answered and never stored), then DA1. Terminals answer
# in order and every one answers DA1, so one round trip says both, however slow the link (SSH).
QUERY = b"\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\\x1b[c"
KITTY_OK = re.compile(rb"\x1b_Gi=31;OK\x1b\\")
DA1 = re.compile(rb"\x1b\[\?([0-9;]*)c")
# How long to wait for the DA1 answer (a terminal that never answers costs this once).
QUERY_TIMEOUT = 1.0


def parse_answers(data: bytes) -> Answers:
    """What the terminal's reply to QUERY says: kitty's OK before DA1; 4 among DA1's
    attributes is sixel. No DA1 answer: nothing is known."""
    da1 = DA1.search(data)
    if da1 is None:
        return Answers()
    return Answers(
        sixel="4" in da1[1].decode("ascii").split(";"),
        kitty=KITTY_OK.search(data, 0, da1.start()) is not None,
    )


def query_terminal(timeout: float = QUERY_TIMEOUT) -> Answers:
    """Ask the terminal (only before Textual starts: afterwards its input thread would take
    the answer). Any failure is no answer."""
    try:
        import termios
        import tty
        from select import select

        fd_in, fd_out = sys.__stdin__.fileno(), sys.__stdout__.fileno()  # type: ignore[union-attr]
        saved = termios.tcgetattr(fd_in)
    except Exception:
        return Answers()
    data = b""
    try:
        tty.setcbreak(fd_in, termios.TCSANOW)  # the answer is read, never echoed
        os.write(fd_out, QUERY)
        deadline = time.monotonic() + timeout
        while DA1.search(data) is None:
            left = deadline - time.monotonic()
            if left <= 0 or not select([fd_in], [], [], left)[0]:
                break
            data += os.read(fd_in, 1024)
    except Exception:
        pass
    finally:
        termios.tcsetattr(fd_in, termios.TCSANOW, saved)
    return parse_answers(data)


def tmux_sixel() -> bool | None:
    """Whether the tmux we run in passes sixel on to its terminal (asked of tmux itself, not
    through it); None when it does not say (tmux < 3.2, no tmux command)."""
    import subprocess

    try:
        done = subprocess.run(
            ["tmux", "display-message", "-p", "#{client_termfeatures}"],
            capture_output=True,
            text=True,
            timeout=2,
            check=True,
        )
    except Exception:
        return None
    features = done.stdout.strip()
    if not features or "#{" in features:
        return None
    return "sixel" in features.split(",")


def on_terminal() -> bool:
    """Whether stdin and stdout are a terminal (the question goes out on one, back on the
    other)."""
    try:
        return bool(sys.__stdin__.isatty() and sys.__stdout__.isatty())  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        return False


def detect(flag: str, color: str = "auto", env: Mapping[str, str] | None = None) -> Choice:
    """The choice for this process: asks the terminal when `needs_query` says so."""
    env = os.environ if env is None else env
    importable = extra_importable()
    tty = on_terminal()
    answers = None
    if needs_query(flag, importable, tty, env):
        answers = query_terminal()
        if in_tmux(env) and answers.sixel:
            answers = Answers(answers.sixel, answers.kitty, tmux_sixel())
    return choose(flag, importable, tty, env, answers, color)


def cell_pixels() -> tuple[int, int]:
    """One cell's size in pixels, from the terminal's window size (TIOCGWINSZ: no bytes are
    exchanged, so it can be read any time; SSH and tmux pass it on); DEFAULT_CELL when the
    terminal does not say."""
    try:
        import fcntl
        import struct
        import termios

        raw = fcntl.ioctl(sys.__stdout__.fileno(), termios.TIOCGWINSZ, b"\0" * 8)  # type: ignore[union-attr]
        rows, cols, xpixel, ypixel = struct.unpack("HHHH", raw)
    except Exception:
        return DEFAULT_CELL
    if rows and cols and xpixel >= cols and ypixel >= rows:
        return (xpixel // cols, ypixel // rows)
    return DEFAULT_CELL


_current = Choice()


def configure(choice: Choice) -> None:
    """Set the choice the previews use (the CLI does, before the app starts)."""
    global _current
    _current = choice


def current() -> Choice:
    return _current
