"""The command line. Headless subcommands call the core only; Textual is imported only when
the curator app itself is opened (start-up cost matters on every CLI call)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import NoReturn

from tui import __version__
from tui.core.dataset import DatasetError, check_root
from tui.core.guide import render_guide
from tui.core.profile import (
    ProfileError,
    dump_profile,
    library_path,
    list_library,
    load_profile,
    resolve_profile,
    save_profile,
)
from tui.core.store import StateError, state_exists
from tui.core.strategy import PATTERNS, Strategy
from tui.core.suggest import suggest_buckets
from tui.core.workspace import Workspace

PROG = "lora-curator"
SUBCOMMANDS = ("apply", "tags", "restore", "profile", "suggest", "check", "guide")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with what the user typed or the profile they named (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_profile_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        metavar="P",
        help="a profile file (a path with '/' or ending in .toml) or a name in the library",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Curate the tag captions of LoRA datasets.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("apply", help="render and write every caption")
    p.add_argument("dataset", metavar="DATASET")
    _add_profile_option(p)
    p.add_argument("--pattern", choices=PATTERNS)
    p.add_argument("--trigger", metavar="W")
    p.add_argument(
        "--dry-run", action="store_true", help="write nothing; print each image's caption"
    )
    changed = p.add_mutually_exclusive_group()
    changed.add_argument(
        "--adopt",
        action="store_true",
        help="caption files changed by another tool: take their tags as the source",
    )
    changed.add_argument(
        "--overwrite",
        action="store_true",
        help="caption files changed by another tool: overwrite them with ours",
    )

    p = sub.add_parser("tags", help="every tag with its image count and bucket")
    p.add_argument("dataset", metavar="DATASET")
    _add_profile_option(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("restore", help="put every original caption file back")
    p.add_argument("dataset", metavar="DATASET")

    p = sub.add_parser("profile", help="the profile library")
    psub = p.add_subparsers(dest="profile_command", parser_class=_Parser, metavar="ACTION")
    psub.required = True
    new = psub.add_parser("new", help="create a profile in the library")
    new.add_argument("name", metavar="NAME")
    new.add_argument("--trigger", metavar="W", default="")
    new.add_argument("--pattern", choices=PATTERNS, default="absorb")
    psub.add_parser("list", help="the profiles in the library")
    show = psub.add_parser("show", help="print a profile")
    show.add_argument("name", metavar="NAME")

    p = sub.add_parser("suggest", help="a suggested bucket and its reason for every unsorted tag")
    p.add_argument("dataset", metavar="DATASET")
    _add_profile_option(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser(
        "check", help="diagnostics: inconsistent traits, untagged flaws, duplicates, ..."
    )
    p.add_argument("dataset", metavar="DATASET")
    _add_profile_option(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("guide", help="print the prompt guide (Markdown) of a strategy")
    p.add_argument("dataset", metavar="DATASET", nargs="?", help="adds image counts")
    _add_profile_option(p)
    return parser


def build_app_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Open the curator on a dataset folder. Headless commands: "
        + ", ".join(SUBCOMMANDS)
        + f" (see `{PROG} COMMAND --help`).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("dataset", metavar="DATASET", nargs="?", default=".")
    _add_profile_option(parser)
    parser.add_argument("--no-mouse", action="store_true", help="do not capture the mouse")
    parser.add_argument(
        "--color", choices=("auto", "truecolor", "256", "16"), default="auto", help="colours"
    )
    parser.add_argument("--theme", metavar="NAME", help="a theme name")
    return parser


def _err(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", '"': '\\"'}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NEEDS_QUOTES = re.compile(r'[\x00-\x1f\x7f\\"]')


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return _ESCAPES.get(ch, f"\\x{ord(ch):02x}")


def quote_path(path: str) -> str:
    """A path as one line of output: as it is, or (when it holds a control character, a
    backslash or a double quote) in double quotes with C escapes, the way git writes it."""
    if not _NEEDS_QUOTES.search(path):
        return path
    return '"' + _NEEDS_QUOTES.sub(_escape, path) + '"'


def _err_file(path: str, message: str) -> None:
    """One line of stderr about one file: a newline in a name never splits it."""
    _err(f"{quote_path(path)}: {_CONTROL.sub(_escape, message)}")


def _load_profile_arg(ref: str | None) -> tuple[Strategy | None, str]:
    if ref is None:
        return None, ""
    path = resolve_profile(ref)
    return load_profile(path), str(path)


def _with_overrides(strategy: Strategy, pattern: str | None, trigger: str | None) -> Strategy:
    if pattern is not None:
        strategy = replace(strategy, pattern=pattern)
    if trigger is not None:
        strategy = replace(strategy, trigger=trigger.strip())
    return strategy


def _print_rows(rows: list[dict[str, object]], as_json: bool, line: str) -> None:
    """Rows on stdout: a JSON list, or one `line.format(**row)` each."""
    if as_json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        for row in rows:
            print(line.format(**row))


def _report_problems(ws: Workspace) -> None:
    for problem in ws.problems:
        _err_file(problem.path, problem.message)


def cmd_apply(args: argparse.Namespace) -> int:
    profile, ref = _load_profile_arg(args.profile)
    if profile is None and not state_exists(check_root(args.dataset)):
        raise UsageError(
            f"{args.dataset}: no working strategy yet; give one with --profile "
            "(a file or a library name), or curate the dataset in the app first"
        )
    with Workspace.open(args.dataset, strategy=profile, read_only=args.dry_run) as ws:
        if not ws.has_strategy:
            raise UsageError(
                f"{ws.root}: no working strategy yet; give one with --profile "
                "(a file or a library name), or curate the dataset in the app first"
            )
        strategy = _with_overrides(ws.strategy, args.pattern, args.trigger)
        _report_problems(ws)
        if args.dry_run:
            ws.state.strategy = strategy
            out = sys.stdout
            for entry, caption in sorted(ws.render_all(), key=lambda ec: ec[0].image):
                out.write(f"{quote_path(entry.image)}\t{caption.rstrip(chr(10))}\n")
            return EXIT_OK
        ws.use_strategy(strategy, ref)
        report = ws.apply(overwrite_changed=args.overwrite, adopt_changed=args.adopt)
        for path, why in report.skipped + report.failed:
            _err_file(path, why)
        print(report.summary(), file=sys.stderr)
        if report.failed:
            return EXIT_FAILURE
        if ws.store is not None:
            ws.store.mark_saved()
        return EXIT_OK


def cmd_tags(args: argparse.Namespace) -> int:
    profile, _ = _load_profile_arg(args.profile)
    with Workspace.open(args.dataset, strategy=profile, read_only=True) as ws:
        counts = ws.tag_counts()
        total = len(ws.images)
        rows = [
            {
                "tag": tag,
                "images": n,
                "percent": round(100.0 * n / total, 1) if total else 0.0,
                "bucket": ws.strategy.effective_bucket(tag),
            }
            for tag, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].casefold()))
        ]
        _print_rows(rows, args.json, "{tag}\t{images}\t{percent:.1f}%\t{bucket}")
        return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    with Workspace.open(args.dataset) as ws:
        report = ws.restore()
        for path, why in report.failed:
            _err_file(path, why)
        print(
            f"{len(report.written)} restored, {len(report.unchanged)} unchanged, "
            f"{len(report.failed)} failed",
            file=sys.stderr,
        )
        return EXIT_FAILURE if report.failed else EXIT_OK


def cmd_profile(args: argparse.Namespace) -> int:
    if args.profile_command == "new":
        path = library_path(args.name)
        if path.exists():
            raise UsageError(f"{path}: a profile named {args.name!r} already exists")
        save_profile(
            Strategy(name=args.name, trigger=args.trigger.strip(), pattern=args.pattern), path
        )
        print(path)
        return EXIT_OK
    if args.profile_command == "list":
        for path in list_library():
            try:
                strategy = load_profile(path)
                detail = f"trigger={strategy.trigger or '-'}\tpattern={strategy.pattern}"
            except ProfileError as exc:
                detail = f"unreadable: {exc}"
            print(f"{path.stem}\t{detail}\t{path}")
        return EXIT_OK
    # show
    path = resolve_profile(args.name)
    sys.stdout.write(dump_profile(load_profile(path)))
    return EXIT_OK


def cmd_suggest(args: argparse.Namespace) -> int:
    profile, _ = _load_profile_arg(args.profile)
    with Workspace.open(args.dataset, strategy=profile, read_only=True) as ws:
        counts = ws.tag_counts()
        suggestions = suggest_buckets(counts, len(ws.images), ws.strategy)
        rows = [
            {
                "tag": tag,
                "images": counts[tag],
                "bucket": s.bucket,
                "reason": s.reason,
                "source": s.source,
            }
            for tag, s in sorted(
                suggestions.items(), key=lambda ts: (-counts[ts[0]], ts[0].casefold())
            )
        ]
        _print_rows(rows, args.json, "{tag}\t{bucket}\t{reason}")
        return EXIT_OK


# Images listed under one finding in the text output of `check` (--json lists them all).
CHECK_IMAGES_SHOWN = 20


def cmd_check(args: argparse.Namespace) -> int:
    from tui.core.checks import has_problem, run_checks
    from tui.core.measures import measure_images  # imports Pillow

    profile, _ = _load_profile_arg(args.profile)
    try:
        ws = Workspace.open(args.dataset, strategy=profile)
    except StateError as exc:
        # Locked by the app (or no writable state): measure without caching.
        _err(f"note: {exc}; measuring without the cache")
        ws = Workspace.open(args.dataset, strategy=profile, read_only=True)
    with ws:
        progress = None
        if sys.stderr.isatty():

            def progress(done: int, total: int) -> None:
                end = "\n" if done == total else ""
                print(f"\rmeasuring images… {done}/{total}", end=end, file=sys.stderr)

        findings = run_checks(ws, measure_images(ws, progress))
        if args.json:
            rows = [
                {
                    "kind": f.kind,
                    "severity": f.severity,
                    "message": f.message,
                    "images": list(f.images),
                    "tag": f.tag,
                }
                for f in findings
            ]
            json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
            sys.stdout.write("\n")
        else:
            for f in findings:
                print(f"{f.kind}\t{f.message}")
                for image in f.images[:CHECK_IMAGES_SHOWN]:
                    print(f"    {image}")
                if len(f.images) > CHECK_IMAGES_SHOWN:
                    more = len(f.images) - CHECK_IMAGES_SHOWN
                    print(f"    … and {more} more (--json lists them all)")
        problems = sum(f.severity == "problem" for f in findings)
        advice = len(findings) - problems
        print(
            f"{problems} problem(s), {advice} advice" if findings else "clean: nothing found",
            file=sys.stderr,
        )
        return EXIT_FAILURE if has_problem(findings) else EXIT_OK


def cmd_guide(args: argparse.Namespace) -> int:
    profile, _ = _load_profile_arg(args.profile)
    if args.dataset is None:
        if profile is None:
            raise UsageError("give a profile (--profile P), a DATASET, or both")
        sys.stdout.write(render_guide(profile))
        return EXIT_OK
    with Workspace.open(args.dataset, strategy=profile, read_only=True) as ws:
        if not ws.has_strategy:
            raise UsageError(
                f"{ws.root}: no working strategy yet; give one with --profile "
                "(a file or a library name), or curate the dataset in the app first"
            )
        sys.stdout.write(render_guide(ws.strategy, ws.tag_counts(), len(ws.images)))
        return EXIT_OK


def run_app(argv: Sequence[str]) -> int:
    args = build_app_parser().parse_args(argv)
    from tui.app.main import run  # Textual is imported only here

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help")):
            return run_app(argv)
        args = build_parser().parse_args(argv)
        handler = {
            "apply": cmd_apply,
            "tags": cmd_tags,
            "restore": cmd_restore,
            "profile": cmd_profile,
            "suggest": cmd_suggest,
            "check": cmd_check,
            "guide": cmd_guide,
        }[args.command]
        return handler(args)
    except (ProfileError, UsageError, DatasetError) as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    except StateError as exc:
        _err(f"error: {exc}")
        return EXIT_FAILURE
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
