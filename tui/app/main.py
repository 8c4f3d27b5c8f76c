"""Start the curator app from parsed command-line arguments."""

from __future__ import annotations

import argparse
import os
import sys

COLOR_SYSTEMS = {"auto": "auto", "truecolor": "truecolor", "256": "256", "16": "standard"}
EXIT_USAGE = 2


def _has_terminal() -> bool:
    """The app reads keys from stdin and draws on stdout: both must be a terminal."""
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def run(args: argparse.Namespace) -> int:
    """Open the app; a bad dataset path or profile is reported before the screen changes, and
    without a terminal (cron, CI, `</dev/null`) the app does not start at all."""
    from tui.core.dataset import check_root
    from tui.core.profile import load_profile, resolve_profile
    from tui.core.text import quote_path, safe_text

    root = check_root(args.dataset)
    profile = None
    ref = ""
    if args.profile:
        path = resolve_profile(args.profile)
        profile = load_profile(path)
        ref = str(path)
    if not _has_terminal():
        # Started with no one at the keys it would wait forever: say what to run instead.
        shown = quote_path(args.dataset)
        print(
            "lora-curator: error: the curator app needs a terminal (stdin and stdout are not "
            f"one); without one use the headless commands, e.g. `lora-curator apply {shown} "
            f"--dry-run`, `lora-curator tags {shown}` or `lora-curator check {shown}`",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # Textual reads the colour system when it is imported: set it first.
    if args.color != "auto":
        os.environ["TEXTUAL_COLOR_SYSTEM"] = COLOR_SYSTEMS[args.color]
    # The terminal can only be asked about graphics before Textual starts reading its input.
    from tui.app import graphics

    choice = graphics.detect(getattr(args, "graphics", "auto"), args.color)
    if choice.message:
        print(f"lora-curator: {choice.message}", file=sys.stderr)
    if choice.protocol == "kitty" and args.color == "auto":
        # Placeholders name their image by a 24-bit colour, and every terminal with kitty's
        # protocol has truecolor (Rich takes TERM=xterm-kitty for 256 colours; ssh drops
        # COLORTERM).
        os.environ["TEXTUAL_COLOR_SYSTEM"] = "truecolor"
    graphics.configure(choice)
    from tui.app.app import CuratorApp
    from tui.app.config import load_config

    config = load_config()
    app = CuratorApp(
        root,
        profile=profile,
        profile_ref=ref,
        theme=args.theme or config.theme or None,
        keymap=config.keymap,
        warnings=config.warnings,
        model=getattr(args, "model", None),
    )
    result = app.run(mouse=not args.no_mouse)
    if app.fatal:
        print(f"lora-curator: error: {safe_text(app.fatal)}", file=sys.stderr)
    return result if isinstance(result, int) else 0
