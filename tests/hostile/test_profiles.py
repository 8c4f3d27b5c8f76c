"""Issue 8, profiles and config: a hostile profile (deep nesting, numbers out of range, wrong
types, a caption extension that would overwrite images) is refused with one line naming the
file and the key, by every command and by the app; a broken config is a warning; a profile
library that cannot be used is one clear line, and the app's save still writes the captions.

Every test drives the real CLI (in-process, `tui.cli.main`) or the real app (pilot) and checks
the tree's bytes before and after.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from tests.app.conftest import settle
from tests.hostile.test_hostile import changed_paths
from tui.app.app import CuratorApp
from tui.app.config import load_config
from tui.core.profile import library_dir

DEEP = 5000  # far past tomllib's recursion limit


def checks(key: str, value: str) -> str:
    return f"schema = 1\n[checks]\n{key} = {value}\n"


def extension(value: str) -> str:
    return f'schema = 1\n[caption]\nextension = "{value}"\n'


# case: (profile text, what the error line must hold besides the file).
BROKEN: dict[str, tuple[str, str]] = {
    # Deep nesting
    "nested-arrays": (f"schema = 1\nx = {'[' * DEEP}{']' * DEEP}\n", "nested too deeply"),
    "nested-inline-tables": (
        f"schema = 1\nx = {'{a = ' * DEEP}1{'}' * DEEP}\n",
        "nested too deeply",
    ),
    "thousands-of-array-tables": ("schema = 1\n" + "[[a]]\n" * DEEP, "unknown key 'a'"),
    "deep-dotted-table": ("schema = 1\n[" + ".".join(["a"] * DEEP) + "]\n", "unknown key 'a'"),
    "nested-list-as-trigger": (
        f"schema = 1\ntrigger = {'[' * 400}{']' * 400}\n",
        "trigger must be a string, not list",
    ),
    # Numbers out of range
    "minus-1e400": (checks("lowres_side", "-1e400"), "[checks] lowres_side = -inf"),
    "inf": (checks("blur_ratio", "inf"), "[checks] blur_ratio = inf"),
    "nan": (checks("inconsistent_trait", "nan"), "[checks] inconsistent_trait = nan"),
    "negative-count": (checks("near_duplicate_distance", "-1"), "near_duplicate_distance = -1"),
    "negative-side": (checks("lowres_side", "-500"), "[checks] lowres_side = -500"),
    "share-over-1": (checks("constant_context", "1.5"), "[checks] constant_context = 1.5"),
    "huge-int": (checks("lowres_side", "9" * 30), "[checks] lowres_side"),
    "distance-over-64": (checks("near_duplicate_distance", "65"), "near_duplicate_distance = 65"),
    "5000-digit-int": (checks("lowres_side", "1" * 5000), "cannot be read"),
    "huge-schema": (f"schema = {'9' * 30}\n", "newer than this lora-curator understands"),
    # Wrong types anywhere
    "boolean-for-number": (checks("lowres_side", "true"), "[checks] lowres_side must be a number"),
    "string-for-number": (checks("blur_ratio", '"0.4"'), "[checks] blur_ratio must be a number"),
    "table-for-number": (checks("lowres_side", "{a = 1}"), "[checks] lowres_side must be a number"),
    "checks-a-string": ('schema = 1\nchecks = "x"\n', "[checks] must be a table"),
    "table-for-trigger": ("schema = 1\ntrigger = {a = 1}\n", "trigger must be a string, not dict"),
    "list-for-name": ('schema = 1\nname = ["x"]\n', "name must be a string"),
    "bucket-a-dict": ("schema = 1\n[buckets.trait]\nx = 1\n", "buckets.trait must be a list"),
    "bucket-of-numbers": ("schema = 1\n[buckets]\ntrait = [1, 2]\n", "buckets.trait must be"),
    "buckets-a-list": ('schema = 1\nbuckets = ["a"]\n', "[buckets] must be a table"),
    "aliases-a-list": ('schema = 1\naliases = ["a"]\n', "[aliases] must be a table"),
    "alias-to-a-list": ('schema = 1\n[aliases]\nx = ["a"]\n', "aliases.'x' must be a string"),
    "alias-to-a-table": ("schema = 1\n[aliases.x]\na = 1\n", "aliases.'x' must be a string"),
    "caption-a-number": ("schema = 1\ncaption = 1\n", "[caption] must be a table"),
    "separator-a-table": ("schema = 1\n[caption.separator]\n", "caption.separator must be"),
    "escape-a-string": (
        'schema = 1\n[caption]\nescape_parentheses = "yes"\n',
        "caption.escape_parentheses must be true or false",
    ),
    "suggest-a-string": ('schema = 1\n[suggest]\ntrait = "x*"\n', "suggest.trait must be"),
    "schema-a-boolean": ("schema = true\n", "schema must be an integer"),
    "schema-a-float": ("schema = 1.0\n", "schema must be an integer"),
    "pattern-a-number": ("schema = 1\npattern = 3\n", "pattern must be a string"),
    # Caption extensions that would overwrite images or the state, or leave the folder
    "extension-png": (extension(".png"), "is an image extension"),
    "extension-JPG": (extension(".JPG"), "is an image extension"),
    "extension-jpeg": (extension(".jpeg"), "is an image extension"),
    "extension-Webp": (extension(".Webp"), "is an image extension"),
    "extension-avif": (extension(".avif"), "is an image extension"),
    "extension-tiff": (extension(".tiff"), "is an image extension"),
    "extension-ends-in-png": (extension(".cap.png"), "is an image extension"),
    "extension-empty": (extension(""), "[caption] extension = '' must look like '.txt'"),
    "extension-no-dot": (extension("txt"), "must look like '.txt'"),
    "extension-slash": (extension(".t/x"), "must look like '.txt'"),
    "extension-dot-slash": (extension("./x"), "must look like '.txt'"),
    "extension-nul": (extension(".t\\u0000x"), "must look like '.txt'"),
    "extension-dot": (extension("."), "must look like '.txt'"),
    "extension-dots": (extension(".."), "must look like '.txt'"),
    "extension-trailing-dot": (extension(".txt."), "must look like '.txt'"),
    "extension-space": (extension(". txt"), "must look like '.txt'"),
    "extension-state": (extension(".lora-curator"), "lora-curator's own"),
    "extension-state-like": (extension(".LORA-CURATOR-x"), "lora-curator's own"),
    "extension-a-number": ("schema = 1\n[caption]\nextension = 3\n", "must be a string"),
}

COMMANDS = {
    "apply": ["apply", "{ds}"],
    "apply --dry-run": ["apply", "{ds}", "--dry-run"],
    "tags": ["tags", "{ds}"],
    "suggest": ["suggest", "{ds}"],
    "check": ["check", "{ds}"],
    "guide DATASET": ["guide", "{ds}"],
    "guide": ["guide"],
    "app": ["{ds}"],
}


def dataset(root: Path) -> Path:
    root.mkdir()
    (root / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "a.txt").write_text("smile,  blush\n", encoding="utf-8")
    (root / "b.jpg").write_bytes(b"\xff\xd8\xff")
    return root


def assert_one_error_line(code: int, out: str, err: str, source: str, fragment: str) -> None:
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"lora-curator: error: {source}: "), err
    assert fragment in err, err
    assert len(err) < 600  # a 5000-digit number or a nested list is not copied whole


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_profile_is_refused(case, command, tmp_path, cli_main, tree_snapshot):
    text, fragment = BROKEN[case]
    root = dataset(tmp_path / "ds")
    profile = tmp_path / "bad.toml"
    profile.write_text(text, encoding="utf-8")
    before = tree_snapshot(tmp_path)
    args = [a.format(ds=root) for a in COMMANDS[command]]
    code, out, err = cli_main(*args, "--profile", profile)
    assert_one_error_line(code, out, err, str(profile), fragment)
    assert tree_snapshot(tmp_path) == before  # no state, no caption, no image touched


@pytest.mark.parametrize("case", ["extension-png", "nested-arrays", "nan"])
def test_broken_library_profile_by_name(case, tmp_path, isolated_config, cli_main, tree_snapshot):
    root = dataset(tmp_path / "ds")
    library = isolated_config / "lora-curator" / "profiles"
    library.mkdir(parents=True)
    (library / "bad.toml").write_text(BROKEN[case][0], encoding="utf-8")
    before, config_before = tree_snapshot(tmp_path), tree_snapshot(isolated_config)
    for args in (["apply", root, "--profile", "bad"], ["profile", "show", "bad"]):
        code, out, err = cli_main(*args)
        assert_one_error_line(code, out, err, str(library / "bad.toml"), BROKEN[case][1])
    # `profile list` lists it as unreadable, with the reason, and goes on.
    code, out, err = cli_main("profile", "list")
    assert code == 0 and f"bad\tunreadable: {library / 'bad.toml'}: " in out
    assert tree_snapshot(tmp_path) == before
    assert tree_snapshot(isolated_config) == config_before


def test_image_extension_never_overwrites_the_images(tmp_path, cli_main, tree_snapshot):
    root = dataset(tmp_path / "ds")
    for ext in (".png", ".jpg", ".PNG", ".avif"):
        profile = tmp_path / "p.toml"
        profile.write_text('trigger = "kd"\n' + extension(ext), encoding="utf-8")
        before = tree_snapshot(root)
        code, _, err = cli_main("apply", root, "--profile", profile)
        assert code == 2 and "image extension" in err
        assert tree_snapshot(root) == before


def test_valid_profile_values_at_the_edges_are_accepted(tmp_path, cli_main, tree_snapshot):
    root = dataset(tmp_path / "ds")
    (root / "a.tags.txt").write_text("smile\n", encoding="utf-8")
    profile = tmp_path / "edge.toml"
    profile.write_text(
        'schema = 1\n[caption]\nextension = ".tags.txt"\n[checks]\n'
        "inconsistent_trait = 1\nconstant_context = 0.0\nblur_ratio = 1.0\n"
        "lowres_side = 0\nnear_duplicate_distance = 64\n",
        encoding="utf-8",
    )
    before = tree_snapshot(root)
    code, out, err = cli_main("tags", root, "--profile", profile)
    assert code == 0, err
    assert out.startswith("smile\t")
    assert tree_snapshot(root) == before


# ---- the app: --profile and the `o` picker ----------------------------------------------------


@pytest.mark.parametrize("case", ["nested-arrays", "extension-png", "huge-int", "alias-to-a-list"])
async def test_profile_picker_notifies_a_broken_profile(
    case, tmp_path, isolated_config, tree_snapshot
):
    root = dataset(tmp_path / "ds")
    library = isolated_config / "lora-curator" / "profiles"
    library.mkdir(parents=True)
    (library / "bad.toml").write_text(BROKEN[case][0], encoding="utf-8")
    before = tree_snapshot(root)
    app = CuratorApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("o")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any(str(library / "bad.toml") in m and BROKEN[case][1] in m for m in messages)
        assert app.is_running and app.ws is not None
        assert app.ws.strategy.caption.extension == ".txt"  # the old strategy is kept
    assert changed_paths(before, tree_snapshot(root)) == set()


# ---- the config file --------------------------------------------------------------------------

CONFIGS: dict[str, tuple[str | bytes | None, str]] = {
    "bad-toml": ('theme = "x\n', "ignored"),
    "nested": (f"x = {'[' * DEEP}{']' * DEEP}\n", "nested too deeply"),
    "nested-keymap": (f"[keymap]\nhelp = {'[' * 300}{']' * 300}\n", "keymap.help"),
    "huge-int": ("theme = " + "1" * 5000 + "\n", "ignored"),
    "theme-a-number": ("theme = 3\n", "theme must be a string"),
    "theme-markup": ('theme = "[/]x"\n', ""),  # an unknown theme: the app says so, literally
    "keymap-a-string": ('keymap = "x"\n', "[keymap] must be a table"),
    "keymap-value-a-number": ("[keymap]\nhelp = 3\n", "keymap.help must be a string"),
    "keymap-markup": ('[keymap]\nhelp = "[/]"\n', ""),
    "keymap-escape": ('[keymap]\nhelp = "\\u001b]0;x\\u0007"\n', "keymap.help"),
    "not-utf8": (b'theme = "\xff\xfe"\n', "ignored"),
    "a-folder": (None, ""),
}


@pytest.mark.parametrize("case", list(CONFIGS))
async def test_broken_config_is_a_warning(case, tmp_path, isolated_config, tree_snapshot):
    content, fragment = CONFIGS[case]
    path = isolated_config / "lora-curator" / "config.toml"
    path.parent.mkdir(parents=True)
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    config = load_config()
    if fragment:
        assert any(fragment in w for w in config.warnings), config.warnings
    root = dataset(tmp_path / "ds")
    before = tree_snapshot(root)
    app = CuratorApp(
        root, theme=config.theme or None, keymap=config.keymap, warnings=config.warnings
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")  # help shows the keymap
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running
        messages = [n.message for n in app._notifications]
        if fragment:
            assert any(fragment in m for m in messages)
    assert changed_paths(before, tree_snapshot(root)) == set()


def test_xdg_config_home_a_file_is_no_config(tmp_path, monkeypatch):
    home = tmp_path / "xdg"
    home.write_text("not a folder")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    config = load_config()
    assert config.theme == "" and config.keymap == {}


# ---- a profile library that cannot be used ----------------------------------------------------


def block_library(kind: str, isolated_config: Path, monkeypatch) -> Path:
    """Make the library unusable; returns the path the error must name."""
    if kind == "xdg-a-file":
        xdg = isolated_config / "xdg"
        xdg.write_text("a file")
        monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
        return xdg
    if kind == "config-dir-a-file":
        (isolated_config / "lora-curator").write_text("a file")
        return isolated_config / "lora-curator"
    if kind == "library-a-file":
        (isolated_config / "lora-curator").mkdir()
        (isolated_config / "lora-curator" / "profiles").write_text("a file")
        return isolated_config / "lora-curator" / "profiles"
    # Read-only and unreadable: chmod, and (root ignores modes) the calls fail for those paths.
    library = isolated_config / "lora-curator" / "profiles"
    library.mkdir(parents=True)
    (library / "kd.toml").write_text('schema = 1\ntrigger = "kd"\n', encoding="utf-8")
    blocked = str(library)
    real_open, real_scandir, real_stat = os.open, os.scandir, os.stat

    def inside(path) -> bool:
        p = os.fspath(path) if not isinstance(path, int) else ""
        return p == blocked or p.startswith(blocked + os.sep)

    if kind == "library-read-only":
        library.chmod(0o555)

        def fake_open(path, flags, *args, **kwargs):
            if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", fake_open)
    else:  # unreadable
        library.chmod(0o000)

        def fake_scandir(path="."):
            if inside(path):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_scandir(path)

        def fake_stat(path, *args, **kwargs):
            if inside(path) and os.fspath(path) != blocked:
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_stat(path, *args, **kwargs)

        monkeypatch.setattr(os, "scandir", fake_scandir)
        monkeypatch.setattr(os, "stat", fake_stat)
    return library


LIBRARY_KINDS = [
    "xdg-a-file",
    "config-dir-a-file",
    "library-a-file",
    "library-read-only",
    "library-unreadable",
]


@pytest.fixture
def restore_modes(isolated_config):
    yield
    library = isolated_config / "lora-curator" / "profiles"
    if library.is_dir():
        library.chmod(0o755)


@pytest.mark.parametrize("kind", LIBRARY_KINDS)
def test_unusable_library_is_one_clear_line(
    kind, tmp_path, isolated_config, monkeypatch, cli_main, tree_snapshot, restore_modes
):
    root = dataset(tmp_path / "ds")
    named = block_library(kind, isolated_config, monkeypatch)
    before, config_before = tree_snapshot(root), tree_snapshot(isolated_config)
    commands = {
        "profile new": ["profile", "new", "mine"],
        "profile list": ["profile", "list"],
        "profile show": ["profile", "show", "mine"],
        "apply --profile NAME": ["apply", root, "--profile", "mine"],
    }
    for command, args in commands.items():
        code, out, err = cli_main(*args)
        if kind == "library-read-only" and command in ("profile list", "profile show"):
            # Reading a read-only library works; `mine` does not exist there.
            assert code == (0 if command == "profile list" else 2), (command, err)
            continue
        assert code == 2, (command, err)
        assert out == "", command
        assert "Traceback" not in err
        assert len(err.splitlines()) == 1, (command, err)
        assert str(named) in err, (command, err)
        assert re.search(r"a file, not a folder|Permission denied|no profile named", err), err
    assert tree_snapshot(root) == before
    assert tree_snapshot(isolated_config) == config_before


@pytest.mark.parametrize("kind", ["xdg-a-file", "library-a-file", "library-read-only"])
async def test_app_save_writes_captions_and_notifies_the_profile_error(
    kind, tmp_path, isolated_config, monkeypatch, tree_snapshot, restore_modes
):
    root = dataset(tmp_path / "ds")
    named = block_library(kind, isolated_config, monkeypatch)
    before = tree_snapshot(root)
    app = CuratorApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+s")
        for _ in range(250):
            await pilot.pause(0.02)
            if not app.busy:
                break
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("profile not saved" in m and str(named) in m for m in messages), messages
        assert app.is_running
    # The caption was written (in canonical form); nothing else outside the state.
    assert changed_paths(before, tree_snapshot(root)) == {"a.txt"}
    assert (root / "a.txt").read_text(encoding="utf-8") == "smile, blush\n"
    assert library_dir().name == "profiles"
