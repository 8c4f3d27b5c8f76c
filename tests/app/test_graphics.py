"""Real pixels: the real app in a pty, forced to (or detecting) kitty's graphics protocol,
sixel or iTerm2's inline images; what it writes to the terminal is read back and decoded.

The pty's window size carries its pixel size (as terminals and SSH report it), so the cell is
CELL pixels and every image sent must be exactly its cells' pixels (or, for kitty and iTerm2,
a small original's own size: the terminal scales it up)."""

from __future__ import annotations

import base64
import io
import os
import re
import sys
from pathlib import Path

import pexpect
import pytest
from PIL import Image

from tests.conftest import write_dataset
from tests.pictures import picture
from tui.app.graphics import INSTALL, Choice
from tui.app.widgets.graphics import MAX_SPAN, PixelPreview, build_pixels, placeholder_diacritics

ROWS, COLS = 40, 120
CELL = (9, 18)
# Set the pty's pixel size, optionally make the graphics extra unimportable, run the CLI.
LAUNCH = """
import fcntl, os, struct, sys, termios
rows, cols, cw, ch = (int(v) for v in os.environ["GFX_WINSIZE"].split(","))
fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, cols * cw, rows * ch))
if os.environ.get("GFX_NO_EXTRA"):
    sys.modules["textual_image"] = None
from tui.cli import main
sys.exit(main(sys.argv[1:]))
"""
PLACEMENT = re.compile(rb"\x1b_Ga=p,U=1,i=(\d+),c=(\d+),r=(\d+),q=2\x1b\\")
TRANSMIT = re.compile(rb"\x1b_Ga=t,f=100,i=(\d+),q=2,m=[01];")
DELETE = re.compile(rb"\x1b_Ga=d,d=I,i=(\d+),q=2\x1b\\")
SIXEL = re.compile(rb'\x1b7\x1b\[(\d+);(\d+)H\x1bP0;0;0q"1;1;(\d+);(\d+)')
ITERM2 = re.compile(
    rb"\x1b]1337;File=inline=1;size=\d+;width=(\d+);height=(\d+);[^:]*:([^\x07]*)\x07"
)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Four images larger than any pane (portrait, landscape, square, portrait)."""
    root = write_dataset(tmp_path / "ds", {f"{n}.txt": "smile, 1girl\n" for n in "abcd"})
    sizes = {"a": (1200, 1600), "b": (1600, 1000), "c": (1400, 1400), "d": (1000, 1500)}
    for seed, (name, size) in enumerate(sizes.items()):
        picture(seed, size).save(root / f"{name}.jpg", quality=85)
    return root


class App:
    """The app in a pty; `out` is everything it wrote so far."""

    def __init__(self, dataset: Path, *options: str, answers: bytes = b"", no_extra=False):
        # As over SSH: no COLORTERM (kitty's placeholders still get their truecolor ids).
        env = dict(os.environ, TERM="xterm-256color")
        env.pop("COLORTERM", None)
        env.pop("TMUX", None)
        env["GFX_WINSIZE"] = f"{ROWS},{COLS},{CELL[0]},{CELL[1]}"
        if no_extra:
            env["GFX_NO_EXTRA"] = "1"
        self.log = io.BytesIO()
        self.child = pexpect.spawn(
            sys.executable,
            ["-c", LAUNCH, str(dataset), *options],
            env=env,
            dimensions=(ROWS, COLS),
            timeout=60,
        )
        self.child.logfile_read = self.log
        if answers:  # what the terminal answers to the queries, already waiting in its input
            self.child.send(answers)

    @property
    def out(self) -> bytes:
        return self.log.getvalue()

    def wait(self, pattern: re.Pattern[bytes], count: int) -> None:
        """Until the output holds `count` matches of `pattern`."""
        while len(pattern.findall(self.out)) < count:
            self.child.expect([pattern, pexpect.EOF])
            if not self.child.isalive() and len(pattern.findall(self.out)) < count:
                raise AssertionError(f"exited before {pattern!r}: {self.out[-2000:]!r}")

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.child.send(key)

    def quit(self) -> bytes:
        """Quit with `q` and return everything written until the end."""
        self.child.send("q")
        self.child.expect(pexpect.EOF)
        self.child.close()
        return self.out


COMMAND = re.compile(rb"\x1b_G([^;\x1b]*)(?:;([^\x1b]*))?\x1b\\")


def kitty_images(out: bytes) -> dict[int, Image.Image]:
    """Every image transmitted, by id, decoded from its chunks."""
    images: dict[int, Image.Image] = {}
    image_id, data = 0, b""
    for match in COMMAND.finditer(out):
        keys = dict(kv.split(b"=", 1) for kv in match[1].split(b","))
        if keys.get(b"a") == b"t":
            image_id, data = int(keys[b"i"]), b""
        elif b"a" in keys:
            continue
        data += match[2] or b""
        if keys.get(b"m") == b"0":
            images[image_id] = Image.open(io.BytesIO(base64.b64decode(data)))
    return images


def events(out: bytes) -> list[tuple[str, int]]:
    """Transmissions ('t', id) and deletions ('d', id) in the order they were written."""
    found = [(m.start(), "t", int(m[1])) for m in TRANSMIT.finditer(out)]
    found += [(m.start(), "d", int(m[1])) for m in DELETE.finditer(out)]
    return [(kind, image_id) for _, kind, image_id in sorted(found)]


def test_kitty_sends_each_image_once_sized_to_its_cells(photos: Path) -> None:
    app = App(photos, "--graphics", "kitty")
    app.wait(PLACEMENT, 1)
    app.keys("?")  # the help over the preview, then closed: the main screen is redrawn
    app.child.expect("close")
    app.keys("q", "]")  # (q closes the help; an escape before `]` would read as OSC) b
    app.wait(PLACEMENT, 2)
    app.keys("f")  # full screen: its own, larger image of b
    app.wait(PLACEMENT, 3)
    app.keys("]")  # c in the full-screen view (the covered preview sends nothing)
    app.wait(PLACEMENT, 4)
    app.keys("f")  # back: the preview sends c
    app.wait(PLACEMENT, 5)
    out = app.quit()

    placements = [(int(i), int(c), int(r)) for i, c, r in PLACEMENT.findall(out)]
    ids = [i for i, _, _ in placements]
    assert len(set(ids)) == 5, "each image shown is one image in the terminal, sent once"
    assert [e for e in events(out) if e[0] == "t"] == [("t", i) for i in ids]
    # The previous image is deleted when another replaces it (the covered preview's too, when
    # `]` moves it on), the full-screen view's when it closes, the last one when the app quits.
    first, second, full_b, full_c, last = ids
    assert events(out) == [
        ("t", first),
        ("d", first),
        ("t", second),
        ("t", full_b),
        ("d", second),
        ("d", full_b),
        ("t", full_c),
        ("t", last),
        ("d", full_c),
        ("d", last),
    ]
    images = kitty_images(out)
    for image_id, cols, rows in placements:
        assert images[image_id].size == (cols * CELL[0], rows * CELL[1])
        assert cols <= COLS and rows < ROWS
    # The full-screen image is larger than the preview's, of the same picture.
    assert placements[2][2] > placements[1][2]
    # Placeholders name the image by its id as a truecolor foreground: the first one's cells.
    r, g, b = (first >> 16) & 255, (first >> 8) & 255, first & 255
    assert re.search(f"38;2;{r};{g};{b}[;0-9]*m\U0010eeee".encode(), out)
    assert b"a=q" not in out and b"\x1b[c" not in out  # forced: nothing asked


def test_sixel_is_drawn_once_per_image_and_again_when_its_cells_were_redrawn(
    photos: Path,
) -> None:
    app = App(photos, "--graphics", "sixel")
    app.wait(SIXEL, 1)
    app.keys("]")
    app.wait(SIXEL, 2)
    app.keys("?")
    app.child.expect("close")
    app.keys("q")  # the help covered the pixels: drawn again once it closes
    app.wait(SIXEL, 3)
    app.keys("j")  # the next image: d
    app.wait(SIXEL, 4)
    out = app.quit()
    draws = [tuple(int(v) for v in m) for m in SIXEL.findall(out)]
    assert len(draws) == 4
    assert draws[2] == draws[1] and draws[1] != draws[0]
    for y, x, width, height in draws:
        assert width % CELL[0] == 0 and height % CELL[1] == 0
        assert x - 1 + width // CELL[0] <= COLS and y - 1 + height // CELL[1] < ROWS


def test_iterm2_inline_images_fill_their_cells(photos: Path) -> None:
    app = App(photos, "--graphics", "iterm2")
    app.wait(ITERM2, 1)
    app.keys("]")
    app.wait(ITERM2, 2)
    out = app.quit()
    found = ITERM2.findall(out)
    assert len(found) == 2
    for cols, rows, data in found:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        assert image.size == (int(cols) * CELL[0], int(rows) * CELL[1])


def test_auto_uses_what_the_terminal_answers(photos: Path) -> None:
    # DA1 with 4: sixel.
    app = App(photos, answers=b"\x1b[?62;4;22c")
    app.wait(SIXEL, 1)
    out = app.quit()
    assert out.count(b"\x1b[c") == 1 and not PLACEMENT.search(out)
    # No sixel, but kitty's query answered OK: kitty.
    app = App(photos, answers=b"\x1b_Gi=31;OK\x1b\\\x1b[?62;22c")
    app.wait(PLACEMENT, 1)
    out = app.quit()
    assert b"a=q" in out and not SIXEL.search(out)
    # Neither (a plain xterm): half-blocks.
    app = App(photos, answers=b"\x1b[?62;22c")
    app.child.expect("▀|▄".encode())
    out = app.quit()
    assert not PLACEMENT.search(out) and not SIXEL.search(out) and b"1337;" not in out


def test_without_the_extra_a_forced_protocol_says_how_and_uses_half_blocks(
    photos: Path,
) -> None:
    app = App(photos, "--graphics", "kitty", no_extra=True)
    app.child.expect("half-blocks")
    app.child.expect("unsorted")
    app.child.expect("▀|▄".encode())  # the half-block preview
    out = app.quit()
    assert INSTALL.encode() in out
    assert b"\x1b_G" not in out and b"Traceback" not in out
    # auto without the extra asks the terminal nothing.
    app = App(photos, no_extra=True)
    app.child.expect("▀|▄".encode())
    out = app.quit()
    assert b"\x1b[c" not in out and b"\x1b_G" not in out


def test_a_bad_file_shows_its_message_not_pixels_and_no_traceback(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", {"a.png": b"\x89PNG\r\n\x1a\nbroken", "a.txt": "x\n"})
    app = App(root, "--graphics", "kitty")
    app.child.expect("cannot decode")
    out = app.quit()
    assert b"\x1b_G" not in out and b"Traceback" not in out


# ---- in process ---------------------------------------------------------------------------------


def test_build_pixels_sizes_to_cells_or_keeps_a_small_original(tmp_path: Path) -> None:
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    picture(1, (1000, 800)).save(big)
    picture(2, (64, 96)).save(small)
    box = (40, 2 * 20)  # 40 × 20 cells for the image, as the pane's half-block box says
    for protocol in ("kitty", "iterm2", "sixel"):
        made = build_pixels(big, "big.png", box, Choice(protocol), CELL)
        assert isinstance(made, PixelPreview)
        cols, rows = made.layout.cols, made.layout.rows
        assert made.size == (cols * CELL[0], rows * CELL[1])
        assert cols == 40 or rows == 20  # fills the pane one way
        assert abs(cols * CELL[0] / (rows * CELL[1]) - 1000 / 800) < 0.1
        made = build_pixels(small, "small.png", box, Choice(protocol), CELL)
        assert isinstance(made, PixelPreview)
        if protocol == "sixel":  # sixel cannot scale: its cells' pixels
            assert made.size == (made.layout.cols * CELL[0], made.layout.rows * CELL[1])
        else:
            assert made.size == (64, 96)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    assert build_pixels(broken, "broken.png", box, Choice("kitty"), CELL) is None
    assert build_pixels(tmp_path / "gone.png", "gone.png", box, Choice("kitty"), CELL) is None


def test_kitty_placeholder_marks_are_the_protocols() -> None:
    # textual-image carries kitty's own table; ours is derived from Unicode and must agree.
    from textual_image.renderable.tgp import _NUMBER_TO_DIACRITIC

    ours = [ord(c) for c in placeholder_diacritics()]
    assert len(ours) == MAX_SPAN == 129
    assert ours == list(_NUMBER_TO_DIACRITIC[:MAX_SPAN])
