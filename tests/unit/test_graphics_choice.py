"""Which graphics protocol the previews use: every branch of the choice, and that the terminal
is asked only in auto, with the extra, on a terminal (tui/app/graphics.py imports no Textual)."""

from __future__ import annotations

import sys

import pytest

from tui.app import graphics
from tui.app.graphics import INSTALL, Answers, Choice, choose, needs_query, parse_answers

PLAIN = {"TERM": "xterm-256color"}
TMUX = {"TERM": "tmux-256color", "TMUX": "/tmp/tmux-1000/default,123,0"}
SIXEL = Answers(sixel=True)
KITTY = Answers(kitty=True)
BOTH = Answers(sixel=True, kitty=True)
NONE = Answers()


def test_halfblocks_flag_and_no_terminal_always_give_half_blocks() -> None:
    assert choose("halfblocks", True, True, PLAIN, BOTH) == Choice()
    for flag in ("auto", "kitty", "sixel", "iterm2"):
        choice = choose(flag, True, False, PLAIN, BOTH)
        assert choice.protocol == "halfblocks" and not choice.message


@pytest.mark.parametrize("flag", ["kitty", "sixel", "iterm2"])
def test_a_forced_protocol_is_used_without_asking(flag: str) -> None:
    # No answers at all (nothing was asked): the flag alone decides.
    assert choose(flag, True, True, PLAIN, None) == Choice(flag)
    assert choose(flag, True, True, PLAIN, NONE).protocol == flag


@pytest.mark.parametrize("flag", ["kitty", "sixel", "iterm2"])
def test_a_forced_protocol_without_the_extra_says_how_to_enable_it(flag: str) -> None:
    choice = choose(flag, False, True, PLAIN, None)
    assert choice.protocol == "halfblocks"
    assert f"--graphics {flag}" in choice.message and INSTALL in choice.message
    assert "half-blocks" in choice.message and "\n" not in choice.message


def test_forced_kitty_needs_truecolor() -> None:
    for color in ("256", "16"):
        choice = choose("kitty", True, True, PLAIN, None, color)
        assert choice.protocol == "halfblocks" and f"--color {color}" in choice.message
    assert choose("kitty", True, True, PLAIN, None, "truecolor").protocol == "kitty"
    # Sixel and iTerm2 images carry their own colours.
    assert choose("sixel", True, True, PLAIN, None, "16").protocol == "sixel"


def test_forced_inside_tmux_passes_kitty_and_iterm2_through_but_not_sixel() -> None:
    assert choose("kitty", True, True, TMUX, None) == Choice("kitty", passthrough=True)
    assert choose("iterm2", True, True, TMUX, None) == Choice("iterm2", passthrough=True)
    # tmux (3.4+) draws sixel itself: wrapping it would hide it from tmux.
    assert choose("sixel", True, True, TMUX, None) == Choice("sixel", passthrough=False)
    assert not choose("kitty", True, True, PLAIN, None).passthrough


def test_auto_without_the_extra_uses_half_blocks_and_has_a_hint() -> None:
    choice = choose("auto", False, True, PLAIN, None)
    assert choice.protocol == "halfblocks" and not choice.message
    assert INSTALL in choice.hint


def test_auto_follows_the_terminals_answers() -> None:
    assert choose("auto", True, True, PLAIN, SIXEL) == Choice("sixel")
    assert choose("auto", True, True, PLAIN, KITTY) == Choice("kitty")
    # Both (WezTerm, Konsole): sixel, as they do not draw kitty's placeholders.
    assert choose("auto", True, True, PLAIN, BOTH) == Choice("sixel")
    assert choose("auto", True, True, PLAIN, NONE) == Choice()
    # Not asked (e.g. TERM=dumb): never a guess.
    assert choose("auto", True, True, PLAIN, None) == Choice()


def test_auto_kitty_answer_needs_truecolor() -> None:
    assert choose("auto", True, True, PLAIN, KITTY, "256") == Choice()
    assert choose("auto", True, True, PLAIN, SIXEL, "256") == Choice("sixel")


def test_auto_inside_tmux_trusts_only_what_tmux_itself_answers() -> None:
    # tmux answers DA1 itself, with 4 whenever it is built with sixel; it passes sixel on
    # only to a terminal that has it, which tmux says too: sixel only then, unwrapped.
    assert choose("auto", True, True, TMUX, Answers(sixel=True, tmux_sixel=True)) == Choice("sixel")
    assert choose("auto", True, True, TMUX, Answers(sixel=True, tmux_sixel=False)) == Choice()
    assert choose("auto", True, True, TMUX, SIXEL) == Choice()  # tmux did not say
    # A kitty answer cannot be tmux's own (it does not know the protocol): passthrough is
    # never assumed, so no kitty images.
    assert choose("auto", True, True, TMUX, KITTY) == Choice()
    assert choose("auto", True, True, TMUX, NONE) == Choice()


def test_the_terminal_is_asked_only_in_auto_with_the_extra_on_a_terminal() -> None:
    assert needs_query("auto", True, True, PLAIN)
    assert needs_query("auto", True, True, TMUX)  # tmux answers for itself
    assert not needs_query("auto", False, True, PLAIN)
    assert not needs_query("auto", True, False, PLAIN)
    assert not needs_query("auto", True, True, {"TERM": "dumb"})
    for flag in ("kitty", "sixel", "iterm2", "halfblocks"):
        assert not needs_query(flag, True, True, PLAIN)


def test_detect_asks_nothing_when_forced_or_without_the_extra(monkeypatch) -> None:
    asked: list[bool] = []
    monkeypatch.setattr(graphics, "query_terminal", lambda: asked.append(True) or SIXEL)
    monkeypatch.setattr(graphics, "on_terminal", lambda: True)
    assert graphics.detect("kitty", env=PLAIN).protocol == "kitty"
    assert graphics.detect("halfblocks", env=PLAIN).protocol == "halfblocks"
    assert asked == []
    assert graphics.detect("auto", env=PLAIN).protocol == "sixel"
    assert asked == [True]
    # The extra missing (its import fails): nothing asked, half-blocks, the hint.
    monkeypatch.setitem(sys.modules, "textual_image", None)
    assert not graphics.extra_importable()
    choice = graphics.detect("auto", env=PLAIN)
    assert choice.protocol == "halfblocks" and INSTALL in choice.hint
    assert asked == [True]
    assert INSTALL in graphics.detect("sixel", env=PLAIN).message


def test_the_graphics_choice_imports_no_textual() -> None:
    import subprocess

    code = "import sys, tui.app.graphics; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_terminals_reply_is_read_from_one_round_trip() -> None:
    kitty_ok = b"\x1b_Gi=31;OK\x1b\\"
    assert parse_answers(b"\x1b[?62;4;22c") == Answers(sixel=True)
    assert parse_answers(kitty_ok + b"\x1b[?62;22c") == Answers(kitty=True)
    assert parse_answers(kitty_ok + b"\x1b[?65;4;1c") == Answers(sixel=True, kitty=True)
    # "4" only as a whole attribute (14, 42 are other things); an error answer is no kitty.
    assert parse_answers(b"\x1b[?64;14;42c") == Answers()
    assert parse_answers(b"\x1b_Gi=31;ENOTSUPPORTED:x\x1b\\\x1b[?62c") == Answers()
    # No DA1 (nothing came back in time): nothing known, even with a kitty-like prefix.
    assert parse_answers(b"") == Answers()
    assert parse_answers(kitty_ok) == Answers()
    # Typed-ahead keys before the answer do not confuse it.
    assert parse_answers(b"jj\x1b[?1;2;4c") == Answers(sixel=True)


def test_inside_tmux_detect_asks_tmux_whether_it_passes_sixel_on(monkeypatch) -> None:
    monkeypatch.setattr(graphics, "on_terminal", lambda: True)
    monkeypatch.setattr(graphics, "query_terminal", lambda: SIXEL)
    monkeypatch.setattr(graphics, "tmux_sixel", lambda: True)
    assert graphics.detect("auto", env=TMUX).protocol == "sixel"
    monkeypatch.setattr(graphics, "tmux_sixel", lambda: None)
    assert graphics.detect("auto", env=TMUX).protocol == "halfblocks"
    # Outside tmux the terminal's own answer is enough.
    assert graphics.detect("auto", env=PLAIN).protocol == "sixel"


def test_tmux_sixel_reads_client_termfeatures(monkeypatch, tmp_path) -> None:
    # A stand-in `tmux` on PATH answers as tmux 3.4 would for a sixel terminal.
    fake = tmp_path / "tmux"
    fake.write_text("#!/bin/sh\necho 'RGB,sixel,title,clipboard'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert graphics.tmux_sixel() is True
    fake.write_text("#!/bin/sh\necho 'RGB,title'\n")
    assert graphics.tmux_sixel() is False
    fake.write_text("#!/bin/sh\necho '#{client_termfeatures}'\n")  # tmux < 3.2
    assert graphics.tmux_sixel() is None
    fake.unlink()
    assert graphics.tmux_sixel() is None
