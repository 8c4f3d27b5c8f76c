"""Start the curator app from parsed command-line arguments."""

from __future__ import annotations

import argparse
import os
import sys

COLOR_SYSTEMS = {"auto": "auto", "truecolor": "truecolor", "256": "256", "16": "standard"}


def run(args: argparse.Namespace) -> int:
    """Open the app; a bad dataset path or profile is reported before the screen changes."""
    # Textual reads the colour system when it is imported: set it first.
    if args.color != "auto":
        os.environ["TEXTUAL_COLOR_SYSTEM"] = COLOR_SYSTEMS[args.color]
    from tui.app.app import CuratorApp
    from tui.app.config import load_config
    from tui.core.dataset import check_root
    from tui.core.profile import load_profile, resolve_profile

    root = check_root(args.dataset)
    profile = None
    ref = ""
    if args.profile:
        path = resolve_profile(args.profile)
        profile = load_profile(path)
        ref = str(path)
    config = load_config()
    app = CuratorApp(
        root,
        profile=profile,
        profile_ref=ref,
        theme=args.theme or config.theme or None,
        keymap=config.keymap,
        warnings=config.warnings,
    )
    result = app.run(mouse=not args.no_mouse)
    if app.fatal:
        print(f"lora-curator: error: {app.fatal}", file=sys.stderr)
    return result if isinstance(result, int) else 0
