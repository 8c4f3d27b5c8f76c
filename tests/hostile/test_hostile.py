"""Hostile inputs: every case of `tests/hostile/README.md`, built in tmp_path, with its
documented outcome.

In every case: the load finishes (`Workspace.open` returns, the CLI exits with the documented
code), the user gets a message naming the file (a `Problem` whose path is the file, a line of
stderr naming it, or the file's own line in `apply --dry-run`), and nothing is written that the
user did not ask for (`tags` and `apply --dry-run` change nothing; a real `apply` changes only
the caption files whose rendering changed).

Unreadable files: `chmod 000` restricts nobody when the tests run as root, so there the read
itself is made to fail (`open`, `io.open` and `os.scandir` raise `PermissionError` for those
paths, as they would for a user); the same assertions run either way.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import re
import stat
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from tui.app.widgets.preview import build_preview
from tui.core.captions import decode_caption, parse_tags
from tui.core.dataset import STATE_DIR
from tui.core.preview import PreviewError, load_preview
from tui.core.workspace import Problem, Workspace

# keep-all, no trigger: a caption is its tags, cleaned (UTF-8, LF, ", " between tags).
PLAIN = 'schema = 1\nname = "plain"\n'
# The same, writing `(` as `\(`.
ESCAPING = 'schema = 1\nname = "escaping"\n[caption]\nescape_parentheses = true\n'
# A trigger: every caption with a tag changes, so a skipped file is easy to see.
KD = 'schema = 1\nname = "kd"\ntrigger = "kd"\n'


# ---- running the CLI and watching the tree ----------------------------------------------------


def changed_paths(before: dict, after: dict) -> set[str]:
    """Paths whose kind, content, mode or (files, links) mtime differ, outside the state
    folder; a folder's mtime is left out (writing a file in it changes it)."""

    def norm(snapshot: dict) -> dict:
        out = {}
        for rel, (kind, content, mode, mtime) in snapshot.items():
            if rel == STATE_DIR or rel.startswith(STATE_DIR + "/"):
                continue
            out[rel] = (kind, content, mode) if kind == "dir" else (kind, content, mode, mtime)
        return out

    b, a = norm(before), norm(after)
    return {rel for rel in b.keys() | a.keys() if b.get(rel) != a.get(rel)}


def write_profile(tmp_path: Path, text: str, name: str = "profile.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Outcome:
    problems: list[Problem]
    dry_out: str
    dry_err: str
    apply_code: int
    apply_err: str
    changed: set[str]  # what the real apply changed (outside the state folder)

    def dry_run_line(self, image: str) -> str:
        lines = [line for line in self.dry_out.splitlines() if line.startswith(image + "\t")]
        assert len(lines) == 1, f"{image!r} has no single line in {self.dry_out!r}"
        return lines[0].split("\t", 1)[1]

    def problem(self, path: str) -> str:
        """The messages of the problems naming `path` (one at least)."""
        found = [p.message for p in self.problems if p.path == path]
        assert found, f"no problem names {path!r}: {self.problems}"
        return " | ".join(found)

    def apply_says(self, path: str) -> str:
        """The stderr lines of the real apply naming `path` (one at least)."""
        found = [
            line
            for line in self.apply_err.splitlines()
            if line.startswith(f"lora-curator: {path}:")
        ]
        assert found, f"apply's stderr does not name {path!r}: {self.apply_err!r}"
        return " | ".join(found)


def check_case(root: Path, profile: Path, cli_main, tree_snapshot) -> Outcome:
    """The common path of every case: read-only commands, an open, a real apply."""
    before = tree_snapshot(root)
    code, _, err = cli_main("tags", root, "--profile", profile)
    assert code == 0, err
    code, dry_out, dry_err = cli_main("apply", root, "--profile", profile, "--dry-run")
    assert code == 0, dry_err
    assert tree_snapshot(root) == before  # read-only commands write nothing, not even state
    with Workspace.open(root) as ws:  # the load finishes
        problems = list(ws.problems)
    assert changed_paths(before, tree_snapshot(root)) == set()  # an open writes its state only
    code, _, apply_err = cli_main("apply", root, "--profile", profile)
    return Outcome(
        problems, dry_out, dry_err, code, apply_err, changed_paths(before, tree_snapshot(root))
    )


# ---- unreadable files ------------------------------------------------------------------------


class Unreadable:
    """Makes files or folders unreadable: `chmod`, and as root (who reads anything) a failing
    `open`/`io.open`/`os.open`/`os.scandir` for those paths, as a user would get."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tree_snapshot) -> None:
        self.denied: dict[str, tuple[int, int]] = {}  # real path → (mode, mode to put back)
        self.active = True
        self._tree_snapshot = tree_snapshot
        real_open, real_os_open, real_scandir = builtins.open, os.open, os.scandir

        def guarded_open(file, *args, **kwargs):
            self.check(file)
            return real_open(file, *args, **kwargs)

        def guarded_os_open(path, flags, *args, **kwargs):
            self.check(path)
            return real_os_open(path, flags, *args, **kwargs)

        def guarded_scandir(path="."):
            self.check(path)
            return real_scandir(path)

        if os.geteuid() == 0:
            monkeypatch.setattr(builtins, "open", guarded_open)
            monkeypatch.setattr(io, "open", guarded_open)
            monkeypatch.setattr(os, "open", guarded_os_open)
            monkeypatch.setattr(os, "scandir", guarded_scandir)

    def check(self, target: object) -> None:
        if (
            self.active
            and isinstance(target, (str, os.PathLike))
            and os.path.realpath(target) in self.denied
        ):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(target))

    def __call__(self, path: Path, mode: int = 0) -> None:
        self.denied[os.path.realpath(path)] = (mode, stat.S_IMODE(path.stat().st_mode))
        os.chmod(path, mode)

    def lifted(self, readable: bool) -> None:
        self.active = not readable
        for path, (mode, old) in self.denied.items():
            os.chmod(path, old if readable else mode)

    def snapshot(self, root: Path) -> dict:
        """`tree_snapshot` of `root`, reading the unreadable files too (their mode shows as
        it was before they were made unreadable)."""
        self.lifted(True)
        try:
            return self._tree_snapshot(root)
        finally:
            self.lifted(False)


@pytest.fixture
def unreadable(monkeypatch, tree_snapshot) -> Iterator[Unreadable]:
    maker = Unreadable(monkeypatch, tree_snapshot)
    yield maker
    maker.lifted(True)


# ---- captions ----------------------------------------------------------------------------------

LONG_TAGS = tuple(f"tag {i:06d}" for i in range(90_000))  # ~1 MB as one caption line

# case → (bytes of img.txt, its tags, a warning naming the file or None, does PLAIN rewrite it)
CAPTIONS: dict[str, tuple[bytes, tuple[str, ...], str | None, bool]] = {
    "cp1252": ("café, crème brûlée\n".encode("cp1252"), ("café", "crème brûlée"), "cp1252", True),
    "shift-jis": (
        "猫耳, 笑顔, セーラー服\r\n".encode("cp932"),
        ("猫耳", "笑顔", "セーラー服"),
        "Shift-JIS",
        True,
    ),
    "utf-16-bom": ("smile, blush\r\n".encode("utf-16"), ("smile", "blush"), None, True),
    "utf-8-bom": (b"\xef\xbb\xbfsmile, blush\n", ("smile", "blush"), None, True),
    "crlf": (b"smile, blush\r\n", ("smile", "blush"), None, True),
    "several-lines": (
        b"smile, blush\nopen mouth\n",
        ("smile", "blush", "open mouth"),
        "2 lines",
        True,
    ),
    "empty": (b"", (), None, False),
    "whitespace-only": (b" \t \r\n\n", (), None, False),
    "only-commas": (b",, ,,\n", (), None, False),
    "1-mb-long": ((", ".join(LONG_TAGS) + "\n").encode(), LONG_TAGS, None, False),
    "escapes": (
        b"kaede \\(blue archive\\), smile\n",
        ("kaede (blue archive)", "smile"),
        None,
        True,  # PLAIN writes `(` as is; see test_escapes_round_trip_when_the_profile_escapes
    ),
    "weights": (
        b"(smile:1.2), (blush, red:0.8), standing\n",
        ("(smile:1.2)", "(blush, red:0.8)", "standing"),
        None,
        False,
    ),
}


@pytest.mark.parametrize("case", list(CAPTIONS))
def test_caption(case, make_dataset, tmp_path, cli_main, tree_snapshot):
    data, tags, warning, rewritten = CAPTIONS[case]
    root = make_dataset({"img.png": None, "img.txt": data, "ok.png": None, "ok.txt": "smile\n"})
    profile = write_profile(tmp_path, PLAIN)
    out = check_case(root, profile, cli_main, tree_snapshot)

    with Workspace.open(root, read_only=True) as ws:
        assert ws.source_tags("img.png") == tags
    caption = ", ".join(tags)
    assert out.dry_run_line("img.png") == caption  # the user sees the file and its caption
    if warning is not None:
        assert warning in out.problem("img.txt")
        assert "lora-curator: img.txt: " in out.dry_err  # stderr names it too
    else:
        assert "img.txt" not in {p.path for p in out.problems}

    assert out.apply_code == 0, out.apply_err
    if not tags:
        # Never an empty caption file (kohya stops on one): left as is, and said so.
        assert "empty caption" in out.apply_says("img.png")
    assert out.changed == ({"img.txt"} if rewritten else set())
    expected = (caption + "\n").encode("utf-8") if tags else data
    assert (root / "img.txt").read_bytes() == expected

    # Nothing lost: restore puts back the exact original bytes.
    code, _, err = cli_main("restore", root)
    assert code == 0, err
    assert (root / "img.txt").read_bytes() == data


def test_escapes_round_trip_when_the_profile_escapes(
    make_dataset, tmp_path, cli_main, tree_snapshot
):
    data = b"kaede \\(blue archive\\), smile\n"
    root = make_dataset({"img.png": None, "img.txt": data})
    out = check_case(root, write_profile(tmp_path, ESCAPING), cli_main, tree_snapshot)
    assert out.dry_run_line("img.png") == "kaede \\(blue archive\\), smile"
    assert out.apply_code == 0
    assert out.changed == set()  # already in the form this profile writes


def test_shift_jis_and_cp1252_are_told_apart():
    # Western text never reads as kana; Japanese text with kana never stays cp1252.
    assert decode_caption("crème brûlée, Ä Ö Ü ß\n".encode("cp1252")).text == (
        "crème brûlée, Ä Ö Ü ß"
    )
    assert decode_caption("ねこみみ, えがお\n".encode("cp932")).text == "ねこみみ, えがお"
    decoded = decode_caption("ねこみみ\n".encode("cp932"))
    assert parse_tags(decoded.text) == ("ねこみみ",)
    assert "Shift-JIS" in decoded.warnings[0]


# ---- images ------------------------------------------------------------------------------------


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def noise(mode: str = "RGB") -> Image.Image:
    return Image.effect_noise((64, 48), 40).convert(mode)


def huge_header_png() -> bytes:
    """A valid 4×4 PNG whose IHDR says 30000×30000 (CRC fixed): tiny on disk, 900 MP claimed."""
    data = bytearray(encoded(Image.new("RGB", (4, 4), (200, 10, 10)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", 30000, 30000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (20, 10), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def sixteen_bit_png() -> bytes:
    image = Image.new("I;16", (30, 20))
    image.putdata([i * 100 for i in range(600)])
    return encoded(image, "PNG")


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


# case → (file name, bytes, error in the preview or None, (width, height, frames) when it decodes)
IMAGES: dict[str, tuple[str, Callable[[], bytes], str | None, tuple[int, int, int] | None]] = {
    "truncated-png": ("img.png", lambda: truncated(encoded(noise(), "PNG")), "truncated", None),
    "truncated-jpeg": ("img.jpg", lambda: truncated(encoded(noise(), "JPEG")), "truncated", None),
    "0-bytes": ("img.png", lambda: b"", "cannot decode", None),
    "30000x30000-header": ("img.png", huge_header_png, "30000×30000 px is too large", None),
    "animated-gif": ("img.gif", animated_gif, None, (20, 10, 3)),
    "cmyk-jpeg": ("img.jpg", lambda: encoded(noise("CMYK"), "JPEG"), None, (64, 48, 1)),
    "16-bit-png": ("img.png", sixteen_bit_png, None, (30, 20, 1)),
}


def shown(renderable) -> str:
    console = Console(width=80, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize("case", list(IMAGES))
def test_image(case, make_dataset, tmp_path, cli_main, tree_snapshot):
    name, make, error, decoded = IMAGES[case]
    root = make_dataset({name: make(), "img.txt": "smile\n"})
    out = check_case(root, write_profile(tmp_path, KD), cli_main, tree_snapshot)
    # The engine pairs images by name and never decodes them: captions work as for any image.
    assert out.dry_run_line(name) == "kd, smile"
    assert out.apply_code == 0
    assert out.changed == {"img.txt"}

    box = (40, 20)
    if error is not None:
        with pytest.raises(PreviewError, match=re.escape(error)):
            load_preview(root / name, *box)
    else:
        assert decoded is not None
        preview = load_preview(root / name, *box)
        assert (preview.width, preview.height, preview.frames) == decoded
        assert preview.image.mode == "RGB"
        assert preview.image.size[0] <= box[0] and preview.image.size[1] <= box[1]
        assert preview.image.getextrema() != ((0, 0), (0, 0), (0, 0))  # not a black frame
    # The preview pane names the file, with the error or the size.
    text = shown(build_preview(root / name, name, box))
    assert name in text
    assert (error or f"{decoded[0]}×{decoded[1]}") in text  # type: ignore[index]


def test_unreadable_image(make_dataset, tmp_path, cli_main, unreadable):
    root = make_dataset({"img.png": encoded(noise(), "PNG"), "img.txt": "smile\n"})
    unreadable(root / "img.png", 0)
    out = check_case(root, write_profile(tmp_path, KD), cli_main, unreadable.snapshot)
    assert out.apply_code == 0
    assert out.changed == {"img.txt"}
    with pytest.raises(PreviewError, match="permission denied"):
        load_preview(root / "img.png", 40, 20)
    text = shown(build_preview(root / "img.png", "img.png", (40, 20)))
    assert "img.png" in text and "permission denied" in text


# ---- the tree ----------------------------------------------------------------------------------


def test_symlink_loops(make_dataset, tmp_path, cli_main, tree_snapshot):
    root = make_dataset({"sub/a.png": None, "sub/a.txt": "smile\n", "b.png": None})
    os.symlink("..", root / "sub" / "up")  # a folder loop
    os.symlink("self.png", root / "self.png")  # an image linking to itself
    os.symlink("b.txt", root / "b.txt")  # a caption linking to itself
    out = check_case(root, write_profile(tmp_path, KD), cli_main, tree_snapshot)
    assert "loop" in out.problem("sub/up")
    assert "Too many levels of symbolic links" in out.problem("self.png")
    assert "cannot read" in out.problem("b.txt")
    assert out.dry_out.splitlines() == ["b.png\tkd", "sub/a.png\tkd, smile"]  # each image once
    assert out.apply_code == 1  # b.txt cannot be written through its loop
    assert "not written" in out.apply_says("b.txt")
    assert out.changed == {"sub/a.txt"}


def test_caption_linked_outside_the_dataset(make_dataset, tmp_path, cli_main, tree_snapshot):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"smile, precious\n")
    root = make_dataset({"a.png": None, "ok.png": None, "ok.txt": "smile\n"})
    os.symlink(outside, root / "a.txt")
    outside_before = tree_snapshot(tmp_path)["outside.txt"]
    out = check_case(root, write_profile(tmp_path, KD), cli_main, tree_snapshot)
    assert out.dry_run_line("a.png") == "kd, smile, precious"  # read through the link
    assert out.apply_code == 1
    assert "outside the dataset" in out.apply_says("a.txt")
    assert out.changed == {"ok.txt"}
    assert tree_snapshot(tmp_path)["outside.txt"] == outside_before  # bytes, mode, mtime
    assert (root / "a.txt").is_symlink()
    code, _, err = cli_main("restore", root)
    assert code == 1 and "lora-curator: a.txt:" in err
    assert outside.read_bytes() == b"smile, precious\n"


def test_unreadable_caption(make_dataset, tmp_path, cli_main, unreadable):
    root = make_dataset({"a.png": None, "a.txt": "smile\n", "ok.png": None, "ok.txt": "smile\n"})
    unreadable(root / "a.txt", 0)
    out = check_case(root, write_profile(tmp_path, KD), cli_main, unreadable.snapshot)
    assert "cannot read (Permission denied)" in out.problem("a.txt")
    assert out.apply_code == 1
    out.apply_says("a.txt")
    assert out.changed == {"ok.txt"}


def test_unreadable_but_writable_caption_is_not_overwritten(
    make_dataset, tmp_path, cli_main, unreadable
):
    # Mode 0200 (or a read error): its tags could not be read, so writing it would lose them.
    root = make_dataset({"a.png": None, "a.txt": "smile\n", "ok.png": None, "ok.txt": "smile\n"})
    unreadable(root / "a.txt", 0o200)
    out = check_case(root, write_profile(tmp_path, KD), cli_main, unreadable.snapshot)
    assert "cannot read (Permission denied)" in out.problem("a.txt")
    assert out.apply_code == 1
    out.apply_says("a.txt")
    assert out.changed == {"ok.txt"}


def test_unreadable_folder(make_dataset, tmp_path, cli_main, unreadable):
    root = make_dataset({"sub/a.png": None, "sub/a.txt": "smile\n", "ok.png": None})
    unreadable(root / "sub", 0)
    out = check_case(root, write_profile(tmp_path, KD), cli_main, unreadable.snapshot)
    assert "cannot read folder" in out.problem("sub")
    assert out.dry_out.splitlines() == ["ok.png\tkd"]
    assert out.apply_code == 0
    assert out.changed == {"ok.txt"}


def test_read_only_caption(make_dataset, tmp_path, cli_main, tree_snapshot):
    root = make_dataset({"a.png": None, "a.txt": "smile\n", "ok.png": None, "ok.txt": "smile\n"})
    os.chmod(root / "a.txt", 0o444)
    out = check_case(root, write_profile(tmp_path, KD), cli_main, tree_snapshot)
    assert out.dry_run_line("a.png") == "kd, smile"
    assert out.apply_code == 1
    assert "read-only file" in out.apply_says("a.txt")
    assert out.changed == {"ok.txt"}
    assert stat.S_IMODE((root / "a.txt").stat().st_mode) == 0o444


@pytest.mark.parametrize(
    "stem",
    ["my image 01", "画像 é ✓", "-x", "a\nb"],
    ids=["spaces", "unicode", "leading-dash", "newline"],
)
def test_odd_names(stem, make_dataset, tmp_path, cli_main, tree_snapshot):
    root = make_dataset({f"{stem}.png": None, f"{stem}.txt": "smile\n", "sub/none.png": None})
    out = check_case(root, write_profile(tmp_path, KD), cli_main, tree_snapshot)
    assert "no caption file" in out.problem("sub/none.png")
    assert out.apply_code == 0
    assert out.changed == {f"{stem}.txt", "sub/none.txt"}
    assert (root / f"{stem}.txt").read_bytes() == b"kd, smile\n"


def test_dataset_path_with_a_leading_dash(tmp_path, make_dataset, run_cli, cli_main, monkeypatch):
    make_dataset({"-x.png": None, "-x.txt": "smile\n"}, name="-ds")
    profile = write_profile(tmp_path, KD)
    # As for every Unix tool, a path starting with '-' goes after `--` (or is written ./-ds).
    real = run_cli("apply", "--profile", profile, "--dry-run", "--", "-ds", cwd=tmp_path)
    assert real.returncode == 0, real.stderr
    assert real.stdout == "-x.png\tkd, smile\n"
    monkeypatch.chdir(tmp_path)
    assert cli_main("apply", "--profile", profile, "--dry-run", "./-ds")[1] == real.stdout
    assert cli_main("tags", "--", "-ds")[:2] == (0, "smile\t1\t100.0%\tunsorted\n")
    code, _, err = cli_main("apply", "--profile", profile, "--", "-ds")
    assert code == 0, err
    assert (tmp_path / "-ds" / "-x.txt").read_bytes() == b"kd, smile\n"
    # Without `--` the path reads as an option: a usage error, nothing written.
    code, _, err = cli_main("apply", "-ds", "--profile", profile)
    assert code == 2
    assert "DATASET" in err


def test_png_and_jpg_share_a_caption(make_dataset, tmp_path, cli_main, tree_snapshot):
    root = make_dataset(
        {"a.png": None, "a.jpg": None, "a.txt": "smile\n", "ok.png": None, "ok.txt": "smile\n"}
    )
    out = check_case(root, write_profile(tmp_path, KD), cli_main, tree_snapshot)
    assert "a.jpg, a.png share this caption" in out.problem("a.txt")
    assert out.apply_code == 0  # a skip, not a failure
    assert "stem collision: not written" in out.apply_says("a.txt")
    assert out.changed == {"ok.txt"}


@pytest.mark.parametrize("kind", ["missing", "a-file"])
@pytest.mark.parametrize("command", ["apply", "apply --dry-run", "tags", "restore", "app"])
def test_dataset_path_missing_or_a_file(kind, command, tmp_path, cli_main, tree_snapshot):
    profile = write_profile(tmp_path, KD)
    target = tmp_path / "nowhere"
    if kind == "a-file":
        target = profile
    before = tree_snapshot(tmp_path)
    args: list[str | Path] = [target] if command == "app" else [*command.split(), target]
    if command.startswith("apply"):
        args += ["--profile", profile]
    code, out, err = cli_main(*args)
    assert code == 2
    assert out == ""
    why = "no such folder" if kind == "missing" else "is a file, not a folder"
    assert err == f"lora-curator: error: {target}: {why}; give the folder of your images\n"
    assert tree_snapshot(tmp_path) == before


def test_dataset_path_missing_real_cli(tmp_path, run_cli):
    result = run_cli("apply", tmp_path / "nowhere", "--dry-run")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"lora-curator: error: {tmp_path / 'nowhere'}: no such folder; "
        "give the folder of your images"
    ]


# ---- the output contract of `apply --dry-run` ---------------------------------------------------

# One line per image: PATH, a TAB, the caption. PATH is written as is, unless it holds a control
# character (newline, tab, ...), a backslash or a double quote: then it is written in double
# quotes with C escapes (\n \t \r \\ \" and \xHH), as git writes such paths.
QUOTED_NAMES = {
    "plain.png": "plain.png",
    "a\nb.png": '"a\\nb.png"',
    "tab\there.png": '"tab\\there.png"',
    "cr\r.png": '"cr\\r.png"',
    'say "hi".png': '"say \\"hi\\".png"',
    "back\\slash.png": '"back\\\\slash.png"',
    "bell\x07.png": '"bell\\x07.png"',
}


def unquote(path: str) -> str:
    if not path.startswith('"'):
        return path
    assert path.endswith('"')
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"'}
    return re.sub(
        r"\\(x[0-9a-f]{2}|.)",
        lambda m: chr(int(m[1][1:], 16)) if m[1][0] == "x" else escapes[m[1]],
        path[1:-1],
    )


def test_dry_run_writes_one_line_per_image(make_dataset, tmp_path, cli_main):
    root = make_dataset(
        {name: None for name in QUOTED_NAMES}
        | {name.rsplit(".", 1)[0] + ".txt": "smile\n" for name in QUOTED_NAMES}
    )
    code, out, _ = cli_main("apply", root, "--profile", write_profile(tmp_path, KD), "--dry-run")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(QUOTED_NAMES), lines
    written = dict(line.rsplit("\t", 1) for line in lines)
    assert sorted(written) == sorted(QUOTED_NAMES.values())
    assert {unquote(p) for p in written} == set(QUOTED_NAMES)
    assert set(written.values()) == {"kd, smile"}


def test_stderr_names_an_odd_file_on_one_line(make_dataset, tmp_path, cli_main):
    # A problem is one line of stderr: its path is quoted as in `apply --dry-run`, and no
    # control character of the message breaks the line.
    root = make_dataset({"a\nb.png": None})  # no caption file: a problem naming it
    code, _, err = cli_main("apply", root, "--profile", write_profile(tmp_path, KD), "--dry-run")
    assert code == 0
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith('lora-curator: "a\\nb.png": no caption file')


# ---- profiles ----------------------------------------------------------------------------------

# case → (the profile's text, what the one-line error says after the file's name)
PROFILES: dict[str, tuple[str, str]] = {
    "syntax-error": (
        'schema = 1\ntrigger = "kd\n',
        r"TOML syntax error: .*\(at line 2, column \d+\)",
    ),
    "unknown-key": ('schema = 1\ncolour = "red"\n', r"unknown key 'colour' in the top level"),
    "wrong-type": ("schema = 1\ntrigger = 3\n", r"trigger must be a string, not int 3"),
    "tag-in-two-buckets": (
        'schema = 1\n[buckets]\ntrait = ["smile"]\ncontext = ["Smile"]\n',
        r"tag 'Smile' is in two buckets, 'trait' and 'context'",
    ),
    "future-schema": ("schema = 2\n", r"schema 2 is newer than this lora-curator understands"),
}


@pytest.mark.parametrize("case", list(PROFILES))
@pytest.mark.parametrize("command", ["apply", "apply --dry-run", "tags", "app"])
def test_broken_profile(case, command, make_dataset, tmp_path, cli_main, tree_snapshot):
    text, message = PROFILES[case]
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    profile = write_profile(tmp_path, text, "bad.toml")
    before = tree_snapshot(tmp_path)
    args = [root] if command == "app" else [*command.split(), root]
    code, out, err = cli_main(*args, "--profile", profile)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert re.fullmatch(rf"lora-curator: error: {re.escape(str(profile))}: {message}.*\n", err)
    assert tree_snapshot(tmp_path) == before  # no state, no caption touched


def test_broken_profiles_in_the_library_are_listed(isolated_config, cli_main, tree_snapshot):
    library = isolated_config / "lora-curator" / "profiles"
    library.mkdir(parents=True)
    for case, (text, _) in PROFILES.items():
        (library / f"{case}.toml").write_text(text, encoding="utf-8")
    (library / "good.toml").write_text(KD, encoding="utf-8")
    before = tree_snapshot(isolated_config)
    code, out, _ = cli_main("profile", "list")
    assert code == 0
    rows = {line.split("\t")[0]: line for line in out.splitlines()}
    assert sorted(rows) == sorted([*PROFILES, "good"])
    for case in PROFILES:
        assert f"unreadable: {library / case}.toml: " in rows[case]
    assert "trigger=kd" in rows["good"]
    assert tree_snapshot(isolated_config) == before


@pytest.mark.parametrize("name", ["../../x", "..", "a/../../x"])
def test_profile_named_outside_the_library(
    name, make_dataset, tmp_path, cli_main, tree_snapshot, isolated_config, monkeypatch
):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    before, config_before = tree_snapshot(tmp_path), tree_snapshot(isolated_config)
    # A new library profile cannot be created outside the library.
    code, out, err = cli_main("profile", "new", name)
    assert code == 2 and out == ""
    assert err == (
        f"lora-curator: error: {name!r} is not a valid profile name; "
        "use letters, digits, space, '.', '_' or '-'\n"
    )
    # As `--profile`, a value with '/' is a path the user typed (read, never written); '..'
    # is a library name, refused.
    code, out, err = cli_main("apply", root, "--profile", name)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert (f"{name}: no such profile file" in err) or "not a valid profile name" in err
    assert tree_snapshot(tmp_path) == before
    assert tree_snapshot(isolated_config) == config_before
