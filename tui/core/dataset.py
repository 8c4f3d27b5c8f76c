"""Scanning a dataset folder: images, their caption files, and what does not pair up."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice, repeat
from pathlib import Path
from typing import NamedTuple

from tui.core.writer import is_temp_file

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
# AVIF counts only where this Pillow can open it (checked lazily: importing Pillow costs time).
OPTIONAL_EXTENSIONS = {".avif": "avif"}
STATE_DIR = ".lora-curator"


class ImageEntry(NamedTuple):
    """One image and the caption file that pairs with it (which may not exist)."""

    image: str  # relative to the dataset root, '/' separators
    caption: str  # relative to the dataset root, '/' separators
    caption_exists: bool


@dataclass
class ScanResult:
    """What a scan found; `problems` are (relative path, message) pairs for the user."""

    root: Path
    images: list[ImageEntry] = field(default_factory=list)
    orphan_captions: list[str] = field(default_factory=list)
    collisions: dict[str, list[str]] = field(default_factory=dict)  # caption → images
    problems: list[tuple[str, str]] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)  # left by an interrupted save
    special: set[str] = field(default_factory=set)  # captions that are FIFOs, sockets, devices
    # What the next scan may reuse instead of listing the folders again (`reuse_listing`):
    # None when this scan cannot be reused (see `scan_dataset`).
    listing: str | None = None
    reused: bool = False  # this result is a reused listing: no folder was listed


class DatasetError(Exception):
    """The dataset path cannot be used at all (missing, not a folder, unreadable)."""


class NotRegularFileError(OSError):
    """A path that is a folder, FIFO, socket or device where a file was expected."""


def file_kind(mode: int) -> str:
    """What a file's mode makes it, as words for the user ("a FIFO (named pipe)", ...)."""
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


# Opening never blocks (a FIFO without a writer would block a plain open forever) and never
# makes a terminal device ours.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def open_regular(
    path: str | os.PathLike[str], follow: bool = True, stat_first: bool = True
) -> tuple[int, os.stat_result]:
    """Open a regular file for reading: (fd, its fstat); the caller closes the fd.

    A FIFO, socket, device or folder raises `NotRegularFileError` (saying what it is) without
    ever being read, so it can neither hang nor feed endless bytes; with `stat_first` it is
    not even opened (opening some devices does something). `follow=False` refuses a symlink
    as the last component (`OSError` with errno ELOOP). O_NONBLOCK stays set: it changes
    nothing for a regular file (and clearing it would cost two system calls a file in the hot
    loop of opening a dataset, where the scan's directory entries stand in for `stat_first`)."""
    if stat_first:
        mode = os.stat(path, follow_symlinks=follow).st_mode
        if not stat.S_ISREG(mode):
            if stat.S_ISLNK(mode):
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), os.fspath(path))
            raise NotRegularFileError(0, f"is {file_kind(mode)}, not a file", os.fspath(path))
    flags = _OPEN_FLAGS if follow else _OPEN_FLAGS | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        # A socket cannot be opened at all (ENXIO): say what it is rather than the errno.
        try:
            mode = os.stat(path, follow_symlinks=follow).st_mode
        except OSError:
            raise exc from None
        if not stat.S_ISREG(mode) and not stat.S_ISLNK(mode):
            raise NotRegularFileError(
                exc.errno, f"is {file_kind(mode)}, not a file", os.fspath(path)
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(0, f"is {file_kind(st.st_mode)}, not a file", os.fspath(path))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _pillow_opens(feature: str) -> bool:
    try:
        from PIL import features

        return bool(features.check(feature))
    except Exception:
        return False


def _kind_of(ext: str, caption_extension: str, optional: dict[str, bool]) -> str | None:
    """What a file extension (as written, with its dot) makes a file: an image (any case),
    a caption (exactly the profile's extension) or nothing."""
    lower = ext.lower()
    if lower in IMAGE_EXTENSIONS:
        return "image"
    if lower in OPTIONAL_EXTENSIONS:
        if lower not in optional:
            optional[lower] = _pillow_opens(OPTIONAL_EXTENSIONS[lower])
        if optional[lower]:
            return "image"
    if ext == caption_extension:
        return "caption"
    return None


def _not_an_image_file(path: str) -> str:
    """Why a name with an image extension is not listed: a broken link, a FIFO, ..."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "broken link: skipped"
    except OSError as exc:
        return f"cannot read ({exc.strerror}): skipped"
    return f"{file_kind(mode)}, not an image file: skipped (never opened)"


def check_root(root: str | os.PathLike[str]) -> Path:
    """The dataset folder as an absolute, resolved path; a `DatasetError` if unusable."""
    path = Path(root).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: no such folder; give the folder of your images")
    if not path.is_dir():
        raise DatasetError(f"{path}: is a file, not a folder; give the folder of your images")
    return Path(os.path.realpath(path))


def _listing(folder: str, rel: str, problems: list[tuple[str, str]]) -> Iterator[os.DirEntry[str]]:
    """A folder's entries, listed a few thousand at a time: a folder of a million images is
    never held as two million entries at once. A folder that cannot be read is a problem."""
    try:
        with os.scandir(folder) as it:
            while chunk := list(islice(it, 4096)):
                yield from chunk
    except OSError as exc:
        problems.append((rel or ".", f"cannot read folder: {exc.strerror}"))


def scan_dataset(
    root: str | os.PathLike[str],
    caption_extension: str = ".txt",
    progress: Callable[[int], None] | None = None,
    reuse: str | None = None,
) -> ScanResult:
    """Find every image below `root` (recursively, skipping dot-folders) and pair it by stem
    with its caption file. Never raises for what it finds: loops, unreadable folders, captions
    without images and stem collisions are reported in the result.

    `reuse` is the `listing` of an earlier scan: when no folder it listed has changed since
    (see `reuse_listing`), its result is returned without listing anything."""
    root_path = check_root(root)
    if reuse is not None:
        kept = reuse_listing(root_path, caption_extension, reuse)
        if kept is not None:
            if progress is not None:
                progress(len(kept.images))
            return kept
    started = time.time_ns()
    result = ScanResult(root=root_path)
    optional: dict[str, bool] = {}
    # Every folder listed, with its stat: the listing is reused while none of them changed.
    folders: list[tuple[str, int, int, int, int]] = []
    # Whether the listing may be reused: not when something in it is a symlink (what it
    # leads to can change with no folder changing) or a folder could not be read.
    reusable = True
    # stem key (relative, no extension) → the first image / all images (when several) found
    first_image: dict[str, str] = {}
    more_images: dict[str, list[str]] = {}
    captions: dict[str, str] = {}
    visited: set[tuple[int, int]] = set()
    found = 0
    kinds: dict[str, str | None] = {}  # file extension → "image" | "caption" | None
    # Trainers pair by the exact caption extension; one with two dots ('.tags.txt') is matched
    # on the whole name.
    long_caption_ext = caption_extension.count(".") > 1

    stack: list[tuple[str, str]] = [(str(root_path), "")]
    while stack:
        folder, rel = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            result.problems.append((rel or ".", f"cannot read folder: {exc.strerror}"))
            reusable = False
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in visited:
            result.problems.append((rel, "symlink loop (or folder linked twice): skipped"))
            reusable = False
            continue
        visited.add(ident)
        folders.append((rel, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
        problems_before = len(result.problems)
        entries = _listing(folder, rel, result.problems)
        prefix = f"{rel}/" if rel else ""
        # The hot loop of opening a dataset (two entries per image): the entry's type comes
        # with the folder listing, so the common file costs no system call, and the checks
        # are ordered so that an image or a caption that is a plain file passes one test.
        for entry in entries:
            name = entry.name
            dot = name.rfind(".")
            kind = None
            if dot > 0:
                ext = name[dot:]
                kind = kinds.get(ext, "")
                if kind == "":
                    kind = kinds[ext] = _kind_of(ext, caption_extension, optional)
            if kind == "image":
                try:
                    plain = entry.is_file(follow_symlinks=False)
                    if not plain and entry.is_symlink():
                        reusable = False
                        plain = entry.is_file()  # a link to a file is listed as one
                except OSError as exc:  # e.g. a link to itself
                    result.problems.append(
                        (prefix + name, f"cannot read ({exc.strerror}): skipped")
                    )
                    continue
                if plain:
                    stem = prefix + name[:dot]
                    if stem in first_image:
                        more_images.setdefault(stem, [first_image[stem]]).append(prefix + name)
                    else:
                        first_image[stem] = prefix + name
                    found += 1
                    if progress is not None and found % 1000 == 0:
                        progress(found)
                    continue
            elif kind == "caption" or (long_caption_ext and name.endswith(caption_extension)):
                try:
                    plain = entry.is_file(follow_symlinks=False)
                except OSError:
                    plain = False
                if plain:
                    captions[prefix + name[: -len(caption_extension)]] = prefix + name
                    continue
            try:
                if entry.is_symlink():
                    reusable = False
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not name.startswith("."):
                    stack.append((entry.path, prefix + name))
                continue
            if kind == "image":
                result.problems.append((prefix + name, _not_an_image_file(entry.path)))
            elif kind == "caption" or (long_caption_ext and name.endswith(caption_extension)):
                rel_name = prefix + name
                captions[rel_name[: -len(caption_extension)]] = rel_name
                try:
                    # A FIFO, socket or device is known here and never opened.
                    if not entry.is_symlink() and not entry.is_file(follow_symlinks=False):
                        result.special.add(rel_name)
                except OSError:
                    pass
            elif name[0] == "." and is_temp_file(name):
                result.temp_files.append(prefix + name)
        if len(result.problems) > problems_before and any(
            msg.startswith("cannot read folder") for _, msg in result.problems[problems_before:]
        ):
            reusable = False  # the listing stopped part way

    new_entry = tuple.__new__  # ImageEntry(...) without the Python-level __new__
    images = result.images
    for stem in sorted(first_image):
        caption = captions.pop(stem, None)
        exists = caption is not None
        if caption is None:
            caption = stem + caption_extension
        names = more_images.get(stem)
        if names is None:
            images.append(new_entry(ImageEntry, (first_image[stem], caption, exists)))
            if not exists:
                result.problems.append((first_image[stem], _NO_CAPTION.format(caption)))
            continue
        names.sort()
        result.collisions[caption] = names
        result.problems.append(
            (
                caption,
                f"stem collision: {', '.join(names)} share this caption in every trainer; "
                "rename all but one",
            )
        )
        for name in names:
            images.append(new_entry(ImageEntry, (name, caption, exists)))
            if not exists:
                result.problems.append((name, _NO_CAPTION.format(caption)))
    result.images.sort()  # by image: the first field, and no two images are the same
    result.orphan_captions = sorted(captions.values())
    for caption in result.orphan_captions:
        result.problems.append((caption, "caption without image: ignored"))
    if progress is not None:
        progress(found)
    if (
        reusable
        and not result.collisions
        and not result.temp_files
        # A folder changed this recently may change again within its mtime's tick (a later
        # change gives it another mtime; putting the mtime back changes its ctime).
        and all(f[3] < started - RACY_NS for f in folders)
    ):
        result.listing = _dump_listing(result, caption_extension, optional, folders)
    return result


# A file or folder changed less than this before it was read may change again within the same
# timestamp tick and keep its stat: it is read (listed) again next time.
RACY_NS = 2_000_000_000
_LISTING_VERSION = 1
_NO_CAPTION = "no caption file ({}): no source tags"
# A name's extension in names joined by NUL: from its last dot to its end.
_EXTENSION = re.compile(r"\.[^./\0]*(?=\0|\Z)")


def _dump_listing(
    result: ScanResult,
    caption_extension: str,
    optional: dict[str, bool],
    folders: list[tuple[str, int, int, int, int]],
) -> str:
    """A scan's result as text (JSON; names joined by NUL, which no name holds)."""
    walk = len(result.problems) - len(result.orphan_captions)
    missing = [e.image for e in result.images if not e.caption_exists]
    walk -= len(missing)
    return json.dumps(
        {
            "version": _LISTING_VERSION,
            "extension": caption_extension,
            "optional": optional,
            "folders": folders,
            "images": "\0".join(e.image for e in result.images),
            # Images without a caption, in the order their problems were reported.
            "missing": "\0".join(p for p, _ in result.problems[walk : walk + len(missing)]),
            "problems": result.problems[:walk],
            "orphans": result.orphan_captions,
            "special": sorted(result.special),
        },
        separators=(",", ":"),
    )


def _names(text: object) -> list[str]:
    """Names a listing joined by NUL, when each is one a scan could have found: relative,
    not empty, no `..` part, a name the file system can have (checked on the joined text:
    a listing holds a million names)."""
    if not isinstance(text, str):
        raise ValueError("not text")
    if not text:
        return []
    if text[0] in "/\0" or text[-1] == "\0" or "\0\0" in text or "\0/" in text:
        raise ValueError("a name that is empty or absolute")
    text.encode("utf-8", "surrogateescape")  # a name no file on disk has: UnicodeEncodeError
    names = text.split("\0")
    if ".." in text and any(".." in name.split("/") for name in names):
        raise ValueError("a name that leaves the dataset")
    return names


def reuse_listing(root: Path, caption_extension: str, listing: str) -> ScanResult | None:
    """The scan a `ScanResult.listing` kept, when every folder it listed is still what was
    listed (device, inode, mtime and ctime: adding, removing or renaming an entry changes
    its folder's mtime, and putting an mtime back changes the ctime). None when a folder
    changed, or the text is not a listing of this extension (a cache: a bad one is never
    trusted, only ignored)."""
    try:
        data = json.loads(listing)
        if data.get("version") != _LISTING_VERSION or data["extension"] != caption_extension:
            return None
        for ext, opens in data["optional"].items():
            if ext not in OPTIONAL_EXTENSIONS or _pillow_opens(OPTIONAL_EXTENSIONS[ext]) != opens:
                return None
        folders = data["folders"]
        if not folders or folders[0][0] != "":
            return None
        _names("\0".join(f[0] for f in folders[1:]))
        for rel, dev, ino, mtime, ctime in folders:
            try:
                st = os.stat(f"{root}/{rel}" if rel else root)
            except OSError:
                return None
            if (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns) != (dev, ino, mtime, ctime):
                return None
        images = _names(data["images"])
        missing = _names(data["missing"])
        problems = [(p, m) for p, m in data["problems"] if isinstance(m, str)]
        orphans = data["orphans"]
        special = data["special"]
        _names("\0".join([*orphans, *special, *(p for p, _ in problems)]))
        absent = set(missing)
        if len(problems) != len(data["problems"]) or (absent and not absent.issubset(images)):
            return None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    result = ScanResult(root=root, listing=listing, reused=True)
    # A caption pairs by stem: the image's name without its extension, then the caption's
    # (replaced in the joined names at once: the extension is what follows the last dot).
    ext = caption_extension.replace("\\", "\\\\")
    captions = _EXTENSION.sub(ext, data["images"]).split("\0")
    exists = repeat(True) if not absent else [image not in absent for image in images]
    # ImageEntry(...) without the Python-level __new__: a million of them.
    result.images = list(
        map(tuple.__new__, repeat(ImageEntry), zip(images, captions, exists, strict=False))
    )
    result.problems = problems
    result.problems.extend(
        (image, _NO_CAPTION.format(image[: image.rfind(".")] + caption_extension))
        for image in missing
    )
    result.orphan_captions = list(orphans)
    result.problems.extend((c, "caption without image: ignored") for c in orphans)
    result.special = set(special)
    return result


@dataclass
class Problem:
    """Something the user should know about one file."""

    path: str
    message: str


# The largest caption read (a trainer reads one line of tags; anything larger is not a caption
# but must still never be cut): past it the file is reported, never snapshotted nor written.
MAX_CAPTION_BYTES = 64 << 20


class CaptionRefused(Exception):
    """A caption path lora-curator will not read or write; the message says why."""


def _too_large(size: int) -> CaptionRefused:
    return CaptionRefused(
        f"is larger than the {MAX_CAPTION_BYTES >> 20} MiB a caption may have "
        f"({size:,} bytes): not read, never written"
    )


def read_caption_file(path: str, follow: bool = False, stat_first: bool = False) -> bytes:
    """A regular file's bytes (see `read_caption_stat`)."""
    return read_caption_stat(path, follow, stat_first)[0]


def read_caption_stat(
    path: str, follow: bool = False, stat_first: bool = False
) -> tuple[bytes, os.stat_result]:
    """A regular file's bytes, whole, with the fewest system calls (captions are small; this
    is the hot loop of opening a dataset), and its `fstat` taken before the read (so a
    change made while reading shows in the next stat).

    Never opens a FIFO, socket or device for reading (`NotRegularFileError`), never reads past
    `MAX_CAPTION_BYTES` (`CaptionRefused`: a sparse multi-GB file is refused by its size
    before any read). `follow=False` refuses a symlink (ELOOP) so the caller can look at
    where it leads first."""
    fd, st = open_regular(path, follow=follow, stat_first=stat_first)
    try:
        size = st.st_size
        if size > MAX_CAPTION_BYTES:
            raise _too_large(size)
        # One read returns the whole file when its size is what fstat said; a file that grows
        # meanwhile is read on to its end (or to the limit).
        want = size + 1
        chunk = os.read(fd, want)
        if len(chunk) == size and size < want:
            return chunk, st
        chunks = [chunk]
        total = len(chunk)
        while chunk:
            chunk = os.read(fd, 1 << 20)
            total += len(chunk)
            if total > MAX_CAPTION_BYTES:
                raise _too_large(total)
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks), st
