"""Issue 8, the terminal: text from a dataset or a profile never controls the terminal, is never
read as Rich markup, and the app never starts (and waits forever) without a terminal.

Every test drives the real CLI (in-process through `tui.cli.main`, or a subprocess), or the real
app (a pty, or Textual's pilot), and checks the tree's bytes before and after.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from tests.app.conftest import settle
from tests.conftest import write_dataset
from tests.hostile.test_hostile import changed_paths
from tui.app.app import CuratorApp
from tui.app.config import load_config
from tui.core.profile import load_profile
from tui.core.text import quote_path, safe_json, safe_text

# What a hostile dataset carries: a window title (OSC 0 ... BEL), a screen clear (CSI 2 J) and
# the one-byte C1 CSI (U+009B), which many terminals obey like ESC [.
TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
CSI = "\x9b31m"
# No raw control character in what the CLI prints (tab and newline are its own layout).
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

EVIL_PROFILE = (
    "schema = 1\n"
    'name = "evil\\u001b]0;pwned\\u0007"\n'
    'trigger = "k\\u009b31m"\n'
    'pattern = "absorb"\n'
    "[buckets]\n"
    'trait = ["t\\u001b[2Jt"]\n'
)


def evil_dataset(root: Path) -> Path:
    """Names, tags and (through EVIL_PROFILE) a trigger and a profile name carrying escapes."""
    return write_dataset(
        root,
        {
            f"a{TITLE}.png": None,
            f"a{TITLE}.txt": f"smile, x{TITLE}y, t{CLEAR}t\n",
            f"b{CLEAR}.png": None,
            f"b{CLEAR}.txt": f"smile, c{CSI}c, t{CLEAR}t\n",
            f"c{CSI}.png": None,
            f"c{CSI}.txt": "smile, d\x7fd, e\x00e\n",
            # Two images sharing one caption: a problem message naming both images.
            f"d{CSI}.png": None,
            f"d{CSI}.jpg": None,
        },
    )


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    root = evil_dataset(tmp_path / "ds")
    profile = tmp_path / "evil.toml"
    profile.write_text(EVIL_PROFILE, encoding="utf-8")
    return root, profile


# ---- the text mechanism -----------------------------------------------------------------------


def test_safe_text_escapes_every_control_character_visibly() -> None:
    assert safe_text(TITLE) == "\\x1b]0;pwned\\x07"
    assert safe_text(CLEAR) == "\\x1b[2J"
    assert safe_text("a\x9bb\x85c\x7fd\x00") == "a\\x9bb\\x85c\\x7fd\\x00"
    assert safe_text("a\nb\tc") == "a\\nb\\tc"
    assert safe_text("a\nb\tc\x1b", keep_lines=True) == "a\nb\tc\\x1b"
    # Bidirectional overrides reorder what the user reads.
    assert safe_text("abc\u202egnp.exe") == "abc\\u202egnp.exe"
    # Text without controls is left exactly as it is, accents, CJK and brackets included.
    for plain in ["café", "猫耳", "[bold]x[/]", "kaede \\(blue archive\\)"]:
        assert safe_text(plain) == plain
    assert quote_path(f"a{TITLE}.png") == '"a\\x1b]0;pwned\\x07.png"'


def test_safe_json_keeps_the_document_and_escapes_what_json_leaves_raw() -> None:
    rows = [{"tag": f"x{TITLE}{CSI}\x7f\u2028"}]
    raw = json.dumps(rows, ensure_ascii=False)
    assert "\x9b" in raw and "\x7f" in raw  # json escapes C0 only
    out = safe_json(raw)
    assert not RAW_CONTROL.search(out) and "\u2028" not in out
    assert json.loads(out) == rows


# ---- the CLI ----------------------------------------------------------------------------------

READ_ONLY_COMMANDS = {
    "tags": ["tags", "{ds}", "--profile", "{p}"],
    "tags --json": ["tags", "{ds}", "--profile", "{p}", "--json"],
    "suggest": ["suggest", "{ds}", "--profile", "{p}"],
    "suggest --json": ["suggest", "{ds}", "--profile", "{p}", "--json"],
    "check": ["check", "{ds}", "--profile", "{p}"],
    "check --json": ["check", "{ds}", "--profile", "{p}", "--json"],
    "guide DATASET": ["guide", "{ds}", "--profile", "{p}"],
    "guide": ["guide", "--profile", "{p}"],
    "apply --dry-run": ["apply", "{ds}", "--profile", "{p}", "--dry-run"],
    "profile list": ["profile", "list"],
    "profile show": ["profile", "show", "evil"],
}


@pytest.mark.parametrize("command", list(READ_ONLY_COMMANDS))
def test_cli_prints_dataset_text_escaped(
    command, evil, tmp_path, isolated_config, cli_main, tree_snapshot
):
    root, profile = evil
    library = isolated_config / "lora-curator" / "profiles"
    library.mkdir(parents=True)
    (library / "evil.toml").write_text(EVIL_PROFILE, encoding="utf-8")
    (library / f"x{TITLE}.toml").write_text("schema = 1\n", encoding="utf-8")
    args = [a.format(ds=root, p=profile) for a in READ_ONLY_COMMANDS[command]]
    before = tree_snapshot(root)
    code, out, err = cli_main(*args)
    assert code in (0, 1), err  # check: 1 when it finds a problem (the undecodable images)
    assert out
    assert not RAW_CONTROL.search(out), repr(out)
    assert not RAW_CONTROL.search(err), repr(err)
    if "--json" in args:
        rows = json.loads(out)  # still JSON, meaning the very same strings
        texts = json.dumps(rows, ensure_ascii=False)
        assert TITLE in texts or CSI in texts or "evil" in texts
    elif command == "profile list":
        assert "evil\ttrigger=k\\x9b31m" in out
        assert "x\\x1b]0;pwned\\x07\t" in out
    elif command == "profile show":
        # Still TOML that reads back as the same profile.
        assert load_profile_text(out).trigger == "k\x9b31m"
    elif command.startswith("guide"):
        assert "k\\x9b31m" in out
    else:
        assert "\\x1b]0;pwned\\x07" in out
    assert changed_paths(before, tree_snapshot(root)) == set()


def load_profile_text(text: str):
    from tui.core.profile import parse_profile

    return parse_profile(text, "shown")


def test_cli_error_lines_show_names_escaped(evil, tmp_path, cli_main, tree_snapshot):
    root, profile = evil
    before = tree_snapshot(root)
    code, out, err = cli_main("apply", root, "--profile", profile)
    assert code == 0
    assert not RAW_CONTROL.search(out + err), repr(err)
    # The stem collision names both images, escaped, on one line.
    lines = [ln for ln in err.splitlines() if "stem collision" in ln]
    assert any("d\\x9b31m.jpg" in ln and "d\\x9b31m.png" in ln for ln in lines), err
    # Only the three captions changed (the trigger was added); no image was touched.
    assert changed_paths(before, tree_snapshot(root)) == {
        f"a{TITLE}.txt",
        f"b{CLEAR}.txt",
        f"c{CSI}.txt",
    }
    # A profile error quoting a value, and a usage error quoting what was typed.
    bad = tmp_path / "bad.toml"
    bad.write_text('schema = 1\npattern = "x\\u009b2J\\u001b]0;pwned\\u0007"\n', encoding="utf-8")
    for args in (
        ["tags", root, "--profile", bad],
        ["apply", root, "--pattern", f"x{TITLE}"],
        ["tags", root / f"missing{CSI}"],
    ):
        code, out, err = cli_main(*args)
        assert code == 2
        assert not RAW_CONTROL.search(err), repr(err)
        assert "\\x9b" in err or "\\x1b" in err


# ---- the app in a real terminal ---------------------------------------------------------------


def read_for(child: pexpect.spawn, seconds: float) -> bytes:
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out += child.read_nonblocking(65536, timeout=0.1)
        except pexpect.TIMEOUT:
            continue
        except pexpect.EOF:
            break
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
def test_app_never_writes_dataset_escapes_to_the_terminal(evil, tmp_path, tree_snapshot):
    root, profile = evil
    before = tree_snapshot(root)
    env = dict(os.environ, TERM="xterm-256color", TEXTUAL_ANIMATIONS="none")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "tui", str(root), "--profile", str(profile), "--no-mouse"],
        env=env,
        dimensions=(40, 160),
        timeout=30,
    )
    try:
        child.expect("unsorted")
        out = child.before + child.after + read_for(child, 1.0)
        # The files, the tags of the image view and of the dataset view, the add-tag dialog
        # (its title names the image), the help and the guide (which quote tags).
        for keys in (["\t"], ["v"], ["a"], ["\x1b"], ["v", "]"], ["\x07"], ["\x1b"]):
            for key in keys:
                child.send(key)
                time.sleep(0.1)
            out += read_for(child, 0.4)
        child.send("q")
        out += read_for(child, 0.5)
        if child.isalive():
            child.send("y")  # "quit anyway?" when the strategy is not saved yet
            out += read_for(child, 2.0)
    finally:
        child.close(force=True)
    for raw in (b"\x1b]0;pwned", b"pwned\x07", b"t\x1b[2Jt", b"b\x1b[2J", b"\xc2\x9b"):
        assert raw not in out, raw
    # What the user sees instead: the escapes as text.
    assert b"\\x1b]0;pwned\\x07" in out
    assert b"\\x1b[2J" in out
    assert b"\\x9b" in out
    assert changed_paths(before, tree_snapshot(root)) == set()


# ---- without a terminal -----------------------------------------------------------------------


def no_terminal_message_checks(err: str, root: Path) -> None:
    assert len(err.splitlines()) == 1, err
    assert "needs a terminal" in err
    assert f"lora-curator apply {root} --dry-run" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("stdin", ["devnull", "pipe"])
def test_app_without_a_terminal_exits_2(stdin, make_dataset, tmp_path, tree_snapshot):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    before = tree_snapshot(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "tui", str(root)],
        stdin=subprocess.DEVNULL if stdin == "devnull" else subprocess.PIPE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    no_terminal_message_checks(result.stderr, root)
    assert tree_snapshot(tmp_path) == before  # no state folder either


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
@pytest.mark.parametrize("redirect", ["> {out}", "< /dev/null"], ids=["stdout-file", "stdin-null"])
def test_app_with_only_one_side_on_a_terminal_exits_2(
    redirect, make_dataset, tmp_path, tree_snapshot
):
    root = make_dataset({"a.png": None, "a.txt": "smile\n"})
    out_file = tmp_path / "out.txt"
    before = tree_snapshot(root)
    command = f"exec {sys.executable} -m tui {root} {redirect.format(out=out_file)}"
    child = pexpect.spawn("/bin/sh", ["-c", command], timeout=30, env=dict(os.environ))
    child.expect(pexpect.EOF)  # it ends by itself: no hang
    child.close()
    assert child.exitstatus == 2
    err = child.before.decode()
    no_terminal_message_checks(err.strip("\r\n"), root)
    if out_file.exists():
        assert out_file.read_text() == ""
    assert tree_snapshot(root) == before


def test_a_bad_dataset_is_still_named_before_the_terminal_check(tmp_path, run_cli):
    result = run_cli(tmp_path / "missing")
    assert result.returncode == 2
    assert "no such folder" in result.stderr and "terminal" not in result.stderr


# ---- Rich markup in data ----------------------------------------------------------------------

MARKUP_PROFILE = 'schema = 1\nname = "[red]x"\ntrigger = "[/]"\n[buckets]\ntrait = ["[bold]"]\n'


def screen_text(app: CuratorApp) -> str:
    """The screen as the user reads it (the screenshot's text)."""
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


def notifications(app: CuratorApp) -> list[str]:
    return [n.message for n in app._notifications]


@pytest.fixture
def markup(tmp_path: Path, isolated_config: Path) -> tuple[Path, Path]:
    root = write_dataset(
        tmp_path / "ds",
        {
            # `x[/i].png`: a folder `x[` holding `i].png`, shown as the path `x[/i].png`.
            "x[/i].png": None,
            "x[/i].txt": "[/], [bold], [red]x, [link=http://x]y, smile\n",
            "[b]z[/b].png": None,
            "[b]z[/b].txt": "smile, [/]\n",
        },
    )
    profile = tmp_path / "[red]x.toml"
    profile.write_text(MARKUP_PROFILE, encoding="utf-8")
    library = isolated_config / "lora-curator" / "profiles"
    library.mkdir(parents=True)
    (library / "[red]y.toml").write_text('schema = 1\nname = "[/]"\n', encoding="utf-8")
    (library / "[bad].toml").write_text('schema = 1\ntrigger = ["[/]"]\n', encoding="utf-8")
    config = isolated_config / "lora-curator" / "config.toml"
    config.write_text('theme = "[/]x"\n[keymap]\n"[/]" = 3\n', encoding="utf-8")
    return root, profile


async def test_markup_in_names_tags_profiles_and_config_is_shown_literally(
    markup, tmp_path, tree_snapshot
):
    root, profile = markup
    config = load_config()
    assert config.warnings  # keymap."[/]" is not a string of keys
    before = tree_snapshot(root)
    app = CuratorApp(
        root,
        profile=load_profile(profile),
        profile_ref=str(profile),
        theme=config.theme,
        keymap=config.keymap,
        warnings=config.warnings,
    )
    async with app.run_test(size=(140, 45)) as pilot:
        await settle(pilot, app)
        shown = screen_text(app)
        assert "[b]z[/b].png" in shown and "x[/i].png" in shown
        assert " [red]x " in shown  # status: the profile's name
        assert any("[/]x" in n for n in notifications(app))  # no theme named '[/]x'
        assert any('keymap."[/]"' in n or "keymap.[/]" in n for n in notifications(app))

        await pilot.press("G")  # the image `x[/i].png`
        await pilot.pause()
        assert "[link=http://x]y" in screen_text(app)
        await pilot.press("tab", "v")  # the dataset's tags
        await pilot.pause()
        assert "[bold]" in screen_text(app)
        await pilot.press("v", "a")  # add a tag: the dialog's title names the image
        await pilot.pause()
        assert "Add a tag to x[/i].png" in screen_text(app)
        await pilot.press("escape", "t")  # the trigger prompt holds `[/]`
        await pilot.pause()
        assert app.screen.query_one("#prompt-input").value == "[/]"
        await pilot.press("escape")

        await pilot.press("o")  # the picker lists `[red]y`, `[bad]` literally
        await pilot.pause()
        shown = screen_text(app)
        assert "[red]y" in shown and "[bad]" in shown
        picker = app.screen.query_one("#profile-options")
        bad_index = [p.stem for p in app.screen.profiles].index("[bad]")
        picker.highlighted = bad_index
        await pilot.press("enter")
        await pilot.pause()
        assert any("trigger must be a string" in n and "[/]" in n for n in notifications(app))

        await pilot.press("ctrl+g")  # the guide quotes the trigger and the traits
        await pilot.pause()
        assert "[bold]" in screen_text(app)
        await pilot.press("escape", "question_mark")
        await pilot.pause()
        await pilot.press("escape", "d")  # diagnostics: findings name the images
        for _ in range(200):
            await pilot.pause(0.02)
            if "measuring" not in screen_text(app):
                break
        assert "[b]z[/b].png" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running

    # Nothing was written outside the state (no save was asked for).
    assert changed_paths(before, tree_snapshot(root)) == set()


async def test_save_notifications_quote_markup_literally(markup, tmp_path, tree_snapshot):
    root, _ = markup
    (tmp_path / "[red]x.toml").unlink()
    before = tree_snapshot(root)
    # No profile: ctrl+s saves the strategy to the library under the dataset's name `[ds]`,
    # which is not a valid profile name: the captions are written, the refusal is notified.
    renamed = root.with_name("[ds]")
    root.rename(renamed)
    app = CuratorApp(renamed)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+s")
        for _ in range(200):
            await pilot.pause(0.02)
            if not app.busy:
                break
        await pilot.pause()
        assert any("'[ds]' is not a valid profile name" in n for n in notifications(app))
        assert app.is_running
    after = tree_snapshot(renamed)
    # The captions were rewritten in canonical form, nothing else changed.
    assert changed_paths(before, after) <= {"x[/i].txt", "[b]z[/b].txt"}


async def test_trigger_prompt_shows_an_escaped_trigger_and_keeps_it(evil, tmp_path, tree_snapshot):
    root, profile = evil
    before = tree_snapshot(root)
    app = CuratorApp(root, profile=load_profile(profile), profile_ref=str(profile))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("t")
        await pilot.pause()
        assert app.screen.query_one("#prompt-input").value == "k\\x9b31m"
        await pilot.press("enter")  # given back unchanged: the trigger is not replaced
        await pilot.pause()
        assert app.ws is not None and app.ws.strategy.trigger == "k\x9b31m"
        assert "k\\x9b31m" in app.caption.shown
        assert app.is_running
    assert changed_paths(before, tree_snapshot(root)) == set()
