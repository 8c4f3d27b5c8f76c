"""Reading an image and preparing it as the WD14 models expect: alpha composited onto
white, padded to a centred white square, resized (bicubic) to the model's input size,
RGB→BGR, float32 in 0–255, no normalisation, HWC (a batch stacks them to NHWC)."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

WHITE = (255, 255, 255)


class ImageReadError(Exception):
    """One image cannot be tagged; the message says why (the caller names the file)."""


def read_image(path: Path) -> tuple[Image.Image, int, int]:
    """Decode `path` (a regular file only: a FIFO or device would block or never end);
    returns the image and the file's size and mtime (ns) as read."""
    try:
        # O_NONBLOCK: opening a FIFO put in an image's place must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ImageReadError(f"cannot open: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageReadError("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read()
    except OSError as exc:
        raise ImageReadError(f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError:
        raise ImageReadError("not an image Pillow can read (corrupt or unknown format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"too large to decode safely ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"corrupt image ({exc})") from None
    except Exception as exc:  # a hostile file can trip any decoder bug: skip it, go on
        raise ImageReadError(f"cannot decode ({type(exc).__name__}: {exc})") from None
    return image, st.st_size, st.st_mtime_ns


def to_square_rgb(image: Image.Image) -> Image.Image:
    """Alpha composited onto white, padded to a centred white square."""
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or ("transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*WHITE, 255))
        canvas.alpha_composite(rgba)
        rgb = canvas.convert("RGB")
    else:
        rgb = image.convert("RGB")
    width, height = rgb.size
    side = max(width, height)
    if width == height:
        return rgb
    square = Image.new("RGB", (side, side), WHITE)
    square.paste(rgb, ((side - width) // 2, (side - height) // 2))
    return square


def prepare_bgr(image: Image.Image, size: int, numpy: Any) -> Any:
    """The model input for one image as uint8: `[size, size, 3]` BGR. Exactly `prepare`'s
    values (0–255 integers are exact in float32) at a quarter of the memory, so the queue of
    prepared images stays small; the batch is cast to float32 in one pass."""
    square = to_square_rgb(image)
    if square.size != (size, size):
        square = square.resize((size, size), Image.Resampling.BICUBIC)
    return numpy.ascontiguousarray(numpy.asarray(square, dtype=numpy.uint8)[:, :, ::-1])


def prepare(image: Image.Image, size: int, numpy: Any) -> Any:
    """The model input for one image: `[size, size, 3]` float32 BGR in 0–255."""
    return prepare_bgr(image, size, numpy).astype(numpy.float32)


def load_prepared(path: Path, size: int, numpy: Any) -> tuple[Any, int, int]:
    """`read_image` then `prepare_bgr`: (uint8 array, file size, mtime_ns). Runs in worker
    threads (Pillow's decoder and resize release the GIL)."""
    image, file_size, mtime_ns = read_image(path)
    try:
        return prepare_bgr(image, size, numpy), file_size, mtime_ns
    except Exception as exc:  # an exotic mode Pillow cannot convert
        raise ImageReadError(f"cannot convert this image ({exc})") from None
