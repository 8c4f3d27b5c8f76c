"""Which graphics protocol the preview uses: chosen once, before Textual starts.

Detection, never guessing: in `auto` the terminal is asked (through the optional
`textual-image` package, which sends DA1 for sixel and a kitty graphics query when it is
imported) and only its answer counts. That question can only be asked before Textual starts
(Textual's input thread would take the answer), only on a terminal, and only in `auto`: a
forced protocol asks nothing. Inside tmux the answers come from tmux itself, which is what
we want: tmux ≥ 3.4 draws sixel itself and says so in its DA1 answer, and it never answers a
kitty query (it does not know the protocol). Passthrough to the outer terminal is never
assumed; forcing `kitty` or `iterm2` inside tmux wraps the images in tmux's passthrough
(which then needs `set -g allow-passthrough on`).

This module imports no Textual: `tui.app.main` uses it before importing the app.
"""

from __future__ import annotations

import os
import sys
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
    if answers.sixel:
        # First, as textual-image does: terminals that speak both (WezTerm, Konsole) do not
        # draw kitty's Unicode placeholders, and kitty itself does not speak sixel. Inside
        # tmux this answer is tmux's own: it draws the sixel itself.
        return Choice("sixel")
    if answers.kitty and not in_tmux(env) and color not in ("256", "16"):
        return Choice("kitty")
    # No answer, or a kitty answer inside tmux (it cannot be tmux's own: never assume
    # passthrough): half-blocks.
    return Choice()


def extra_importable() -> bool:
    """Whether the `graphics` extra is installed (importing its package sends nothing)."""
    try:
        import textual_image  # noqa: F401
    except ImportError:
        return False
    return True


def query_terminal() -> Answers:
    """Ask the terminal (only before Textual starts): textual-image sends the queries when its
    renderables are imported and keeps the result. Any failure is no answer."""
    try:
        from textual_image import renderable
        from textual_image.renderable.sixel import Image as SixelImage
        from textual_image.renderable.tgp import Image as TGPImage
    except Exception:
        return Answers()
    return Answers(sixel=renderable.Image is SixelImage, kitty=renderable.Image is TGPImage)


def stdout_is_tty() -> bool:
    try:
        return bool(sys.__stdout__ and sys.__stdout__.isatty())
    except (AttributeError, ValueError):
        return False


def detect(flag: str, color: str = "auto", env: Mapping[str, str] | None = None) -> Choice:
    """The choice for this process: asks the terminal when `needs_query` says so."""
    env = os.environ if env is None else env
    importable = extra_importable()
    tty = stdout_is_tty()
    answers = query_terminal() if needs_query(flag, importable, tty, env) else None
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
