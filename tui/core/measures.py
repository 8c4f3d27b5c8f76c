"""Measuring the pictures of a dataset for the image checks (tui/core/checks.py), cached.

What is measured of each image (:class:`ImageMeasure`): the file's size and mtime (its
version), a hash of its bytes, its full size from the header, a sharpness and a perceptual
hash. Sharpness is the variance of a Laplacian on a greyscale copy downscaled to at most
256 px; the perceptual hash is a 64-bit difference hash of the same copy.

Measuring decodes (Pillow, in a few threads: decoding releases the GIL) and is slow the first
time; the results are cached in the dataset's state (`Store.save_measures`), keyed by the
image's path, size and mtime, so a second run decodes only what changed. The rules that turn
measures into findings are in checks.py and never import Pillow.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageMath

from tui.core.dataset import NotRegularFileError, open_regular
from tui.core.preview import MAX_PREVIEW_PIXELS, flatten
from tui.core.store import StateError, content_hash

if TYPE_CHECKING:
    from tui.core.workspace import Workspace

# Sharpness and the perceptual hash are computed on a greyscale copy at most this wide/tall.
MEASURE_SIDE = 256
# Bump when the measuring changes: cached measures of another version are measured again.
MEASURE_VERSION = 1
# Prefix of the error of an image refused by the size guard (not broken: just not measured).
TOO_LARGE = "too large to measure"
# Rows saved to the state at a time (an interrupted run keeps what it measured).
_SAVE_BATCH = 256


@dataclass(frozen=True)
class ImageMeasure:
    """What the image checks need to know of one image file.

    ``size`` and ``mtime_ns`` identify the file's version (the cache key with the image path);
    ``digest`` hashes its bytes; ``width``/``height`` are the full size from its header;
    ``sharpness`` is the Laplacian variance at most 256 px; ``dhash`` a 64-bit difference hash.
    A file that could not be measured has an ``error`` (and zero measures)."""

    size: int
    mtime_ns: int
    digest: bytes
    width: int
    height: int
    sharpness: float
    dhash: int
    error: str = ""

    @property
    def too_large(self) -> bool:
        """Refused by the size guard: not broken, just not measured."""
        return self.error.startswith(TOO_LARGE)


def _grey(image: Image.Image) -> Image.Image:
    """A greyscale ("L") copy of a decoded image; transparency is composited onto white."""
    return flatten(image, (255, 255, 255)).convert("L")


def _sharpness(grey: Image.Image) -> float:
    """Variance of the 4-neighbour Laplacian of a greyscale image (0 for images under 3 px).

    Computed in floating point on cropped, shifted copies (no clipping of strong edges), the
    mean and mean square taken by box-resizing to one pixel: Pillow only, no Python loop."""
    w, h = grey.size
    if w < 3 or h < 3:
        return 0.0
    f = grey.convert("F")
    centre = f.crop((1, 1, w - 1, h - 1))
    up = f.crop((1, 0, w - 1, h - 2))
    down = f.crop((1, 2, w - 1, h))
    left = f.crop((0, 1, w - 2, h - 1))
    right = f.crop((2, 1, w, h - 1))
    lap = ImageMath.lambda_eval(
        lambda a: a["u"] + a["d"] + a["l"] + a["r"] - a["c"] * 4,
        u=up,
        d=down,
        l=left,
        r=right,
        c=centre,
    )
    square = ImageMath.lambda_eval(lambda a: a["x"] * a["x"], x=lap)
    box = Image.Resampling.BOX
    mean = lap.resize((1, 1), box).getpixel((0, 0))
    mean_square = square.resize((1, 1), box).getpixel((0, 0))
    return max(0.0, float(mean_square) - float(mean) ** 2)  # type: ignore[arg-type]


def _dhash(grey: Image.Image) -> int:
    """A 64-bit difference hash: is each of 8×8 cells brighter than its right neighbour."""
    small = grey.resize((9, 8), Image.Resampling.BOX)
    pixels = small.tobytes()
    value = 0
    for row in range(8):
        base = row * 9
        for col in range(8):
            value = (value << 1) | (pixels[base + col] > pixels[base + col + 1])
    return value


def measure_file(path: str | os.PathLike[str]) -> ImageMeasure:
    """Measure one image file; never raises (a file that cannot be measured gets an error)."""
    try:
        # A FIFO or device is never opened for reading (it could hang or never end).
        fd, st = open_regular(path)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
    except NotRegularFileError as exc:
        return ImageMeasure(0, 0, b"", 0, 0, 0.0, 0, f"cannot read: {exc.strerror}")
    except OSError as exc:
        return ImageMeasure(0, 0, b"", 0, 0, 0.0, 0, f"cannot read: {exc.strerror or exc}")
    size, mtime_ns = st.st_size, st.st_mtime_ns
    digest = content_hash(data) or b""
    width = height = 0
    try:
        with warnings.catch_warnings():
            # Our own size guard below replaces Pillow's warning (which would print on the
            # terminal); threads all install the same filter, so their races are harmless.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        with im:
            width, height = im.size
            if width * height > MAX_PREVIEW_PIXELS:
                return ImageMeasure(
                    size,
                    mtime_ns,
                    digest,
                    width,
                    height,
                    0.0,
                    0,
                    f"{TOO_LARGE}: {width}×{height} px is over "
                    f"{MAX_PREVIEW_PIXELS // 1_000_000} MP; not decoded",
                )
            if im.format == "JPEG":
                im.draft("L", (MEASURE_SIDE, MEASURE_SIDE))
            im.load()
            grey = _grey(im)
            grey.thumbnail((MEASURE_SIDE, MEASURE_SIDE), Image.Resampling.BOX)
            return ImageMeasure(
                size, mtime_ns, digest, width, height, _sharpness(grey), _dhash(grey)
            )
    except Image.DecompressionBombError:
        error = f"{TOO_LARGE}: over Pillow's decompression-bomb limit; not decoded"
    except Exception as exc:  # any decoder failure is a broken image
        error = f"cannot decode: {exc.__class__.__name__}: {exc}"
    return ImageMeasure(size, mtime_ns, digest, width, height, 0.0, 0, error)


def _row(image: str, m: ImageMeasure) -> tuple[Any, ...]:
    """The state's row of a measure (see `Store.save_measures`)."""
    return (image, MEASURE_VERSION, m.size, m.mtime_ns, m.digest, m.width, m.height,
            m.sharpness, m.dhash, m.error)  # fmt: skip


def _from_row(row: tuple[Any, ...]) -> ImageMeasure:
    _, _, size, mtime_ns, digest, width, height, sharpness, dhash, error = row
    return ImageMeasure(
        int(size), int(mtime_ns), bytes(digest), int(width), int(height), float(sharpness),
        int(dhash), str(error),
    )  # fmt: skip


def measure_images(
    ws: Workspace, progress: Callable[[int, int], None] | None = None
) -> dict[str, ImageMeasure]:
    """Measure every image of the workspace: image (relative path) → :class:`ImageMeasure`.

    Measures cached in the dataset's state are reused while the file's size and mtime are
    unchanged; the others are computed (Pillow, in a few threads: decoding releases the GIL)
    and saved to the state. A workspace without a writable state computes everything and
    saves nothing. ``progress(done, total)`` is called in the caller's thread as images are
    done. Safe to call from a worker thread.
    """
    store = ws.store
    writable = store is not None and not store.read_only
    cached = store.measures() if store is not None else {}
    root = str(ws.root)
    total = len(ws.images)
    out: dict[str, ImageMeasure] = {}
    todo: list[str] = []
    for entry in ws.images:
        image = entry.image
        row = cached.get(image)
        if row is not None and row[1] == MEASURE_VERSION:
            try:
                st = os.stat(os.path.join(root, image))
            except OSError:
                st = None
            if st is not None and (st.st_size, st.st_mtime_ns) == (row[2], row[3]):
                out[image] = _from_row(row)
                continue
        todo.append(image)
    done = len(out)
    if progress is not None:
        progress(done, total)
    if not todo:
        return out

    pending: list[tuple[Any, ...]] = []

    def flush() -> None:
        nonlocal writable
        if writable and pending:
            assert store is not None
            try:
                store.save_measures(pending)
            except StateError:
                writable = False  # the cache is an optimisation: measuring goes on
        pending.clear()

    workers = max(1, min(4, os.cpu_count() or 1, len(todo)))
    paths = [os.path.join(root, image) for image in todo]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="measure") as pool:
        for image, measure in zip(todo, pool.map(measure_file, paths), strict=True):
            out[image] = measure
            pending.append(_row(image, measure))
            done += 1
            if len(pending) >= _SAVE_BATCH:
                flush()
            if progress is not None:
                progress(done, total)
    flush()
    return out
