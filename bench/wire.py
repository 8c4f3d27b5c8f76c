"""Bytes on the wire: what the real app writes to its terminal, in a pseudo-terminal.

Run from the repository root, with the project's venv:

    .venv/bin/python bench/wire.py                 # 3 launches per case
    .venv/bin/python bench/wire.py --runs 5 --presses 6

The app is the real program (`python -m tui DATASET`, what `lora-curator DATASET` runs),
forked onto a pseudo-terminal (`pty.fork`) at 120x40 and 80x24, in truecolor
(`TERM=xterm-256color COLORTERM=truecolor`) and in 256 colours (`TERM=xterm-256color`, no
COLORTERM, as over SSH). Two datasets, both copied to a temporary folder: 12 photo-like JPEGs
(512x768, smooth gradients + shapes + noise from a fixed seed, so neighbouring cells differ as
in a photo) with WD14-style captions, and the repository's `sample_dataset` (small flat
drawings). Nothing is mocked and nothing is answered on the terminal's behalf.

"Settled" means no output for `--quiet` seconds (0.3). What is counted, each median over
`--runs` fresh launches (and `--presses` presses per launch for the keys):

- start-up: every byte from the fork until the status bar says "unsorted" and the app settled
  (the first image's preview drawn).
- `]` (cached): the next image, its preview prefetched (the app prefetches the neighbours).
- `]` (not cached): from the first image, three `]` 40 ms apart (under the app's 60 ms
  debounce, so the third image's preview is not prefetched), minus two `]` the same way
  (both prefetched) in the same launch: the "loading…" frame and the preview drawn.
- `j` in the file list: the cursor moves to the next image (its preview cached, too).
- `tab`: the focus from the file list to the tag list (both borders and cursors change).
- `1` on the tag list (after that `tab`): the highlighted tag to trait; the cursor moves to
  the next unsorted tag.

Floors, measured in the same run: "cells" is the screen's cells as plain characters
(width x height bytes, a full repaint without colour); "pixels" is the lossless minimal
half-block encoding of the preview's own pixels at the size the app draws them (a cursor
move per row, a colour code only where a cell's colours change, `▄` per cell), the median
over the dataset's images: what a `]` needs for the preview alone without quantising.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import pty
import random
import select
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_dataset"
SIZES = [(120, 40), (80, 24)]
COLOURS = ["truecolor", "256"]
PHOTOS = 12
PHOTO_SIZE = (512, 768)
SEED = 13
TAG_POOL = [
    "1girl", "solo", "long hair", "short hair", "black hair", "brown hair", "blonde hair",
    "blue eyes", "brown eyes", "green eyes", "smile", "open mouth", "closed eyes", "blush",
    "looking at viewer", "outdoors", "indoors", "sky", "cloud", "tree", "day", "night",
    "shirt", "white shirt", "skirt", "dress", "jacket", "hat", "sitting", "standing",
    "upper body", "full body", "portrait", "blurry", "blurry background", "depth of field",
    "window", "building", "city", "street", "grass", "flower", "water", "beach", "sunlight",
]  # fmt: skip
MARKER = b"unsorted"
TARGET_KIB = 32  # issue 13: bytes per `]` image switch at 120x40 truecolor


# ---- the datasets -------------------------------------------------------------------------------


def photo(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A photo-like picture: low-frequency colour gradients, soft shapes, fine noise."""
    w, h = size
    # Gradients: each channel a sum of two slow waves with random phase (drawn small, scaled up
    # smoothly, so the colour changes everywhere but slowly).
    gw, gh = 16, 24
    grad = Image.new("RGB", (gw, gh))
    waves = [[rng.uniform(0.5, 2.5) for _ in range(6)] for _ in range(3)]
    pix = grad.load()
    for y in range(gh):
        for x in range(gw):
            rgb = []
            for c in range(3):
                a, b, p, q, s, t = waves[c]
                v = 0.5 + 0.25 * math.sin(a * x / gw * 6 + p) + 0.25 * math.cos(b * y / gh * 6 + q)
                v += 0.1 * math.sin((s * x + t * y) / 5)
                rgb.append(max(0, min(255, int(v * 230))))
            pix[x, y] = tuple(rgb)
    image = grad.resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(4, 8)):  # soft shapes: a figure, things in the scene
        x0, y0 = rng.randrange(0, w - 60), rng.randrange(0, h - 60)
        x1, y1 = x0 + rng.randint(40, w // 2), y0 + rng.randint(40, h // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(3))
    # Sensor grain from the same seed (Image.effect_noise is not seeded).
    noise = Image.frombytes("L", size, rng.randbytes(w * h)).convert("RGB")
    return Image.blend(image, noise, 0.08)


def photo_dataset(root: Path) -> Path:
    rng = random.Random(SEED)
    folder = root / "10_photo"
    folder.mkdir(parents=True)
    for i in range(PHOTOS):
        photo(rng, PHOTO_SIZE).save(folder / f"photo_{i:02}.jpg", quality=90)
        tags = rng.sample(TAG_POOL, 18)
        (folder / f"photo_{i:02}.txt").write_text(", ".join(tags) + "\n", encoding="utf-8")
    return root


def sample_dataset(root: Path) -> Path:
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns(".lora-curator"))
    return root


# ---- the app in a pty ---------------------------------------------------------------------------


class Terminal:
    """The real app on a pseudo-terminal; every byte it writes is counted."""

    def __init__(self, dataset: Path, size: tuple[int, int], colour: str, quiet: float) -> None:
        env = dict(os.environ, TERM="xterm-256color", PYTHONPATH=str(ROOT))
        env.pop("COLORTERM", None)
        env.pop("NO_COLOR", None)
        if colour == "truecolor":
            env["COLORTERM"] = "truecolor"
        self.quiet = quiet
        self.total = 0
        self.seen = b""
        self.marked = False  # MARKER came (the dataset is open)
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal
            with contextlib.suppress(Exception):
                import fcntl
                import struct
                import termios

                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
            os.execve(sys.executable, [sys.executable, "-m", "tui", str(dataset)], env)
        self.pid, self.fd = pid, fd
        import fcntl
        import struct
        import termios

        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))

    def read(self, timeout: float) -> int:
        """Read what is there within `timeout` seconds; the byte count (0: nothing came)."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return 0
        try:
            data = os.read(self.fd, 1 << 16)
        except OSError:
            return 0
        self.total += len(data)
        self.seen = (self.seen + data)[-4096:]
        self.marked = self.marked or MARKER in self.seen
        return len(data)

    def settle(self, until: Callable[[], bool] = lambda: True, limit: float = 60.0) -> int:
        """Read until `until()` holds and nothing came for `quiet` seconds; bytes read."""
        start = self.total
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.read(self.quiet) == 0 and until():
                return self.total - start
        raise RuntimeError(f"the app did not settle within {limit} s")

    def press(self, keys: str, gap: float = 0.0) -> int:
        """Send `keys` (one at a time, `gap` seconds apart); bytes written until settled."""
        start = self.total
        for i, key in enumerate(keys):
            if i and gap:
                end = time.monotonic() + gap
                while (left := end - time.monotonic()) > 0:
                    self.read(left)
            os.write(self.fd, key.encode())
        self.settle()
        return self.total - start

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            self.read(0.05)
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


@dataclass
class Case:
    start: list[int] = field(default_factory=list)
    cached: list[int] = field(default_factory=list)
    uncached: list[int] = field(default_factory=list)
    j: list[int] = field(default_factory=list)
    tab: list[int] = field(default_factory=list)
    bucket: list[int] = field(default_factory=list)


def launch(dataset: Path, size: tuple[int, int], colour: str, args, case: Case) -> None:
    state = dataset / ".lora-curator"
    shutil.rmtree(state, ignore_errors=True)  # every launch a first open, the same edits
    term = Terminal(dataset, size, colour, args.quiet)
    try:
        case.start.append(term.settle(lambda: term.marked))
        # From the first image: three fast `]` (the third not prefetched), then two (both
        # prefetched); the difference is one `]` whose preview is not cached.
        triple = term.press("]]]", gap=0.04)
        term.press("g")  # back to the first image (its preview cached), not counted
        case.uncached.append(triple - term.press("]]", gap=0.04))
        term.press("g")
        case.cached += [term.press("]") for _ in range(args.presses)]
        term.press("g")
        case.j += [term.press("j") for _ in range(args.presses)]
        case.tab.append(term.press("\t"))  # the tag list
        case.bucket += [term.press("1") for _ in range(args.presses)]
    finally:
        term.close()


# ---- floors -------------------------------------------------------------------------------------


async def preview_box(dataset: Path, size: tuple[int, int]) -> tuple[int, int] | None:
    """The pixels the app's preview pane draws at `size` (None: no preview at that size)."""
    from tui.app.app import CuratorApp

    app = CuratorApp(dataset)
    async with app.run_test(size=size) as pilot:
        for _ in range(500):
            await pilot.pause(0.02)
            if app.ws is not None and not app.busy and not app.preview.pending:
                break
        await pilot.pause(0.2)
        pane = app.preview
        if not pane.display or pane.content_size.width <= 0:
            return None
        w, h = pane.content_size
        return (w, (h - 1) * 2)


def minimal_encoding(image: Image.Image, colour: str) -> int:
    """Bytes of the lossless half-block encoding of `image`: per row of cells a cursor move,
    a colour code only where the fg or bg changes, then `▄` (3 bytes) per cell."""
    from rich.color import Color, ColorSystem

    w, h = image.size
    px = image.load()
    eight: dict[tuple[int, int, int], int] = {}

    def code(rgb: tuple[int, int, int], ground: int) -> int:
        if colour == "truecolor":
            return len(f"{ground};2;{rgb[0]};{rgb[1]};{rgb[2]}")
        if rgb not in eight:
            c = Color.from_rgb(*rgb).downgrade(ColorSystem.EIGHT_BIT)
            eight[rgb] = c.number or 0
        return len(f"{ground};5;{eight[rgb]}")

    def key(rgb: tuple[int, int, int]) -> object:
        if colour == "truecolor":
            return rgb
        code(rgb, 38)
        return eight[rgb]

    total = 0
    for row in range(0, h - 1, 2):
        total += len(f"\x1b[{row // 2 + 1};1H")
        fg = bg = None
        for x in range(w):
            top, bottom = px[x, row], px[x, row + 1]
            params = []
            if key(top) != bg:
                params.append(code(top, 48))
                bg = key(top)
            if key(bottom) != fg:
                params.append(code(bottom, 38))
                fg = key(bottom)
            if params:
                total += 3 + sum(params) + len(params) - 1  # ESC [ ... m
            total += 3  # ▄
    return total


def pixel_floor(dataset: Path, box: tuple[int, int] | None, colour: str) -> int | None:
    from tui.core.preview import fit_size, load_preview

    if box is None:
        return None
    sizes = []
    images = sorted(p for p in dataset.rglob("*") if p.suffix in (".png", ".jpg"))
    for path in images:
        if ".lora-curator" in path.parts:
            continue
        preview = load_preview(path, *box)
        w, h = fit_size(preview.width, preview.height, *box)
        image = preview.image if preview.image.size == (w, h) else preview.image.resize((w, h))
        sizes.append(minimal_encoding(image, colour))
    return int(statistics.median(sizes))


# ---- the table ----------------------------------------------------------------------------------


def kib(n: float) -> str:
    return f"{n / 1024:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh launches per case")
    parser.add_argument("--presses", type=int, default=4, help="presses per key and launch")
    parser.add_argument("--quiet", type=float, default=0.3, help="settled: no output this long")
    parser.add_argument("--only", choices=["photo", "sample"], help="one dataset only")
    parser.add_argument("--size", choices=[f"{w}x{h}" for w, h in SIZES], help="one size only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="wire-") as tmp:
        datasets = {
            "photo": photo_dataset(Path(tmp) / "photo"),
            "sample": sample_dataset(Path(tmp) / "sample"),
        }
        if args.only:
            datasets = {args.only: datasets[args.only]}
        print(
            f"bytes the app writes (KiB, median of {args.runs} launches x {args.presses} presses)"
            f"; floors: cells = W x H plain bytes, pixels = minimal lossless half-block preview\n"
        )
        head = (
            f"{'dataset':<7} {'size':>6} {'colour':>9} | {'start':>6} {'] cached':>8} "
            f"{'] cold':>7} {'j':>6} {'tab':>6} {'1':>6} | {'cells':>6} {'pixels':>6} | "
            f"{']/cells':>7} {']/pixels':>8}"
        )
        print(head)
        print("-" * len(head))
        for name, dataset in datasets.items():
            for size in SIZES:
                if args.size and args.size != f"{size[0]}x{size[1]}":
                    continue
                box = asyncio.run(preview_box(dataset, size))
                for colour in COLOURS:
                    case = Case()
                    for _ in range(args.runs):
                        launch(dataset, size, colour, args, case)
                    cells = size[0] * size[1]
                    pixels = pixel_floor(dataset, box, colour)
                    cached = statistics.median(case.cached)
                    print(
                        f"{name:<7} {size[0]:>3}x{size[1]:<2} {colour:>9} | "
                        f"{kib(statistics.median(case.start)):>6} {kib(cached):>8} "
                        f"{kib(statistics.median(case.uncached)):>7} "
                        f"{kib(statistics.median(case.j)):>6} "
                        f"{kib(statistics.median(case.tab)):>6} "
                        f"{kib(statistics.median(case.bucket)):>6} | "
                        f"{kib(cells):>6} {kib(pixels) if pixels else '-':>6} | "
                        f"{cached / cells:>7.2f} "
                        f"{(f'{cached / pixels:.2f}' if pixels else '-'):>8}",
                        flush=True,
                    )
        print(f"\ntarget: `]` (cached) at 120x40 truecolor on photos <= {TARGET_KIB} KiB")


if __name__ == "__main__":
    main()
