"""Decoding images for the terminal preview (Pillow only; no Textual).

Previews are small: the image is decoded at reduced size where the format allows (JPEG draft
mode), thumbnailed with a good filter and flattened to RGB. Huge or broken files give a
`PreviewError` with a message for the user, never an exception the app has to guess about.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from PIL import Image

from tui.core.dataset import NotRegularFileError, open_regular

# Refuse to decode images above this many pixels (a PNG whose header claims 30000×30000 would
# take gigabytes); the preview then shows the claimed size instead.
MAX_PREVIEW_PIXELS = 80_000_000
# The background alpha is composited on (dark grey reads well on dark and light themes).
BACKGROUND = (32, 32, 32)


class PreviewError(Exception):
    """The image cannot be previewed; the message says why, for the user."""


@dataclass(frozen=True)
class PreviewImage:
    """A small RGB image ready for half-block rendering, and the original's size."""

    image: Image.Image
    width: int
    height: int
    frames: int = 1


def fit_size(width: int, height: int, max_w: int, max_h: int) -> tuple[int, int]:
    """The largest size with the image's aspect ratio inside max_w × max_h (at least 1×1)."""
    if width <= 0 or height <= 0:
        return (1, 1)
    scale = min(max_w / width, max_h / height)
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def flatten(image: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """An 8-bit RGB version of any decoded image: 16-bit and float greyscale are scaled by
    their own range, transparency is composited onto `background`."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit/float greyscale: scale to 8 bits by the image's own range.
        image = image.convert("I") if mode != "F" else image
        lo, hi = image.getextrema()
        span = (hi - lo) or 1
        image = image.point(lambda v: (v - lo) * 255 / span).convert("L")
        mode = "L"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, background)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    # CMYK (Pillow handles Adobe's inverted JPEGs), P, L, 1...: a plain conversion.
    return image.convert("RGB") if mode != "RGB" else image


def _too_large(width: int, height: int) -> PreviewError:
    return PreviewError(
        f"{width}×{height} px is too large to preview "
        f"(over {MAX_PREVIEW_PIXELS // 1_000_000} MP); not decoded"
    )


def _claimed_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The size an image's header claims, read by its format's opener as `Image.open` does but
    without the decompression-bomb check (nothing is decoded); None when no opener reads it."""
    try:
        Image.init()
        fd, _ = open_regular(path)
        with os.fdopen(fd, "rb") as fp:
            prefix = fp.read(16)
            for fmt in Image.ID:
                factory, accept = Image.OPEN[fmt]
                accepted = not accept or accept(prefix)
                if not accepted or isinstance(accepted, str):
                    continue
                fp.seek(0)
                try:
                    return factory(fp, os.fspath(path)).size
                except Exception:
                    continue
    except Exception:
        return None
    return None


def load_preview(path: str | os.PathLike[str], max_w: int, max_h: int) -> PreviewImage:
    """Decode `path` into an RGB image that fits max_w × max_h pixels, keeping its aspect."""
    try:
        # A FIFO or device is never opened for reading (it could hang or never end).
        fd, _ = open_regular(path)
        with os.fdopen(fd, "rb") as fh, Image.open(fh) as im:
            width, height = im.size
            if width * height > MAX_PREVIEW_PIXELS:
                raise _too_large(width, height)
            frames = getattr(im, "n_frames", 1)
            target = fit_size(width, height, max_w, max_h)
            if im.format == "JPEG":
                im.draft("RGB", (target[0] * 2, target[1] * 2))
            im.load()
            small = flatten(im)
            if small.size != target:
                small = small.resize(target, Image.Resampling.LANCZOS)
            else:
                small = small.copy()
            return PreviewImage(small, width, height, frames)
    except PreviewError:
        raise
    except Image.DecompressionBombError:
        # Pillow refuses such a header in `open` and does not say the size: read it ourselves.
        size = _claimed_size(path)
        if size is not None:
            raise _too_large(*size) from None
        raise PreviewError("too large to preview safely; not decoded") from None
    except NotRegularFileError as exc:
        raise PreviewError(f"{exc.strerror}: not an image file; never opened") from None
    except FileNotFoundError:
        raise PreviewError("the file is gone") from None
    except PermissionError:
        raise PreviewError("cannot read: permission denied") from None
    except Exception as exc:  # any decoder failure is a broken image
        raise PreviewError(f"cannot decode: {exc.__class__.__name__}: {exc}") from None
