"""The command line. Headless subcommands call the core only; Textual is imported only when
the curator app itself is opened (start-up cost matters on every CLI call)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from tui import __version__
from tui.core.dataset import STATE_DIR, DatasetError, check_root
from tui.core.guide import render_guide
from tui.core.implied import workspace_implied
from tui.core.profile import (
    ProfileError,
    dump_profile,
    library_path,
    list_library,
    load_profile,
    profile_exists,
    resolve_profile,
    save_profile,
)
from tui.core.scores import character_tags
from tui.core.session import guide_text, write_captions
from tui.core.store import (
    CorruptStateError,
    NewerStateError,
    StateError,
    reset_state,
    state_exists,
)
from tui.core.strategy import PATTERNS, Strategy
from tui.core.suggest import suggest_buckets
from tui.core.text import quote_path, safe_json, safe_text
from tui.core.workspace import Workspace
from tui.core.writer import write_file_atomic
from tui.progress import Reporter

PROG = "lora-curator"
SUBCOMMANDS = (
    "apply",
    "tags",
    "restore",
    "profile",
    "suggest",
    "check",
    "guide",
    "export",
    "find",
    "edit",
    "alias",
    "tag",
    "reset-state",
)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
# `export` targets and default resolution (tui.core.export is imported only by `export`).
EXPORT_TRAINERS = ("kohya", "onetrainer", "ai-toolkit")
DEFAULT_RESOLUTION = 1024
EXPORT_HANDLES = frozenset({"kohya-folder-mode", "trigger-comma"})


class UsageError(Exception):
    """A problem with what the user typed or the profile they named (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        # The message quotes what was typed (maybe pasted from a file name): shown escaped.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {safe_text(message)}\n")


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
        "--general-threshold",
        type=_fraction,
        metavar="X",
        help="tagger scores: keep general tags at or above X (0..1), for this run",
    )
    p.add_argument(
        "--character-threshold",
        type=_fraction,
        metavar="X",
        help="tagger scores: keep character tags at or above X (0..1), for this run",
    )
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

    p = sub.add_parser(
        "reset-state",
        help="move the dataset's state (edits, original copies) to a backup and start over",
    )
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

    p = sub.add_parser("export", help="a trainer's dataset config for this dataset")
    p.add_argument(
        "trainer",
        choices=EXPORT_TRAINERS,
        metavar="TRAINER",
        help="kohya | onetrainer | ai-toolkit",
    )
    p.add_argument("dataset", metavar="DATASET")
    _add_profile_option(p)
    p.add_argument(
        "--resolution",
        type=int,
        default=DEFAULT_RESOLUTION,
        metavar="PX",
        help="training side length",
    )
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write FILE (atomically) instead of stdout"
    )
    p.add_argument("--force", action="store_true", help="with -o: replace an existing FILE")
    p = sub.add_parser(
        "find",
        help="print the images a query finds (exit 1 when none)",
        description="Print the images a query finds, one per line, sorted. "
        "Example: lora-curator find DATASET 'black hair, smile | grin, -blurry'.",
    )
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("query", metavar="QUERY", help="a query (see README: Finding images)")
    _add_profile_option(p)
    p = sub.add_parser(
        "edit",
        help="add/remove tags on the images a query finds (state only; apply writes them)",
        description="Add and remove tags on every image a query finds (default: every image), "
        "as one undoable edit recorded in the dataset's state, exactly like an edit in the app. "
        "No caption file is written: `apply` writes them. Example: lora-curator edit DATASET "
        "--where 'black hair, -smile' --add 'serious' --remove 'blush'.",
    )
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument(
        "--where", metavar="QUERY", help="the images to edit (see README: Finding images)"
    )
    p.add_argument("--add", metavar="TAG", action="append", default=[], help="a tag to add")
    p.add_argument("--remove", metavar="TAG", action="append", default=[], help="a tag to remove")
    p = sub.add_parser(
        "alias",
        help="rename a tag dataset-wide, or merge it into another (state only)",
        description="Write the tag FROM as TO in every caption (onto a tag the dataset has "
        "already: a merge), or with --remove FROM take the alias away. One undoable edit "
        "recorded in the dataset's state, saved into the profile by the app; `apply` writes "
        "the captions.",
    )
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("tags", metavar="FROM TO", nargs="*", help="the tag and its new name")
    p.add_argument("--remove", metavar="FROM", help="remove the alias of FROM")
    p = sub.add_parser(
        "tag", help="tag the images with a WD14 model; every score is kept (captions untouched)"
    )
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument(
        "--model",
        metavar="MODEL",
        required=True,
        help="a folder holding model.onnx and selected_tags.csv, or a Hugging Face repo id "
        "(e.g. SmilingWolf/wd-vit-tagger-v3) in the local Hugging Face cache",
    )
    p.add_argument(
        "--batch-size", metavar="N", type=_positive_int, default=16, help="images per batch"
    )
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument(
        "--retag", action="store_true", help="tag every image again, not only the new ones"
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch a repo id missing from the cache (needs huggingface_hub)",
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


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
    parser.add_argument(
        "--graphics",
        choices=("auto", "kitty", "sixel", "iterm2", "halfblocks"),
        default="auto",
        help="how the preview draws images: real pixels in terminals that speak kitty's, "
        "sixel or iTerm2's protocol (auto asks the terminal; needs the graphics extra), "
        "else half-blocks",
    )
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help="the tagger model ctrl+t tags with (as for `tag`; default: the last one `tag` used)",
    )
    return parser


def _err(message: str) -> None:
    """One line on stderr; messages quote tags, names and paths: control characters escaped."""
    print(f"{PROG}: {safe_text(message)}", file=sys.stderr)


def _file_line(path: str, message: str) -> str:
    """One line about one file, safe to show: a newline in a name never splits it."""
    return f"{PROG}: {safe_text(f'{quote_path(path)}: {message}')}"


def _err_file(path: str, message: str) -> None:
    """One line of stderr about one file."""
    print(_file_line(path, message), file=sys.stderr)


def _write_json(rows: object) -> None:
    sys.stdout.write(safe_json(json.dumps(rows, ensure_ascii=False, indent=1)) + "\n")


def _load_profile_arg(ref: str | None) -> tuple[Strategy | None, str]:
    if ref is None:
        return None, ""
    path = resolve_profile(ref)
    return load_profile(path), str(path)


def _fraction(text: str) -> float:
    """A threshold argument: a number between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # nan fails too
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1")
    return value


def _with_thresholds(
    strategy: Strategy, general: float | None, character: float | None
) -> Strategy:
    """The strategy with the `--general-threshold`/`--character-threshold` of the command
    (fixed thresholds: giving one is asking for it, so `mode = "mcut"` yields)."""
    if general is None and character is None:
        return strategy
    tagger = replace(strategy.tagger, mode="fixed")
    if general is not None:
        tagger = replace(tagger, general_threshold=general)
    if character is not None:
        tagger = replace(tagger, character_threshold=character)
    return replace(strategy, tagger=tagger)


def _with_overrides(strategy: Strategy, pattern: str | None, trigger: str | None) -> Strategy:
    if pattern is not None:
        strategy = replace(strategy, pattern=pattern)
    if trigger is not None:
        strategy = replace(strategy, trigger=trigger.strip())
    return strategy


def _print_rows(rows: list[dict[str, object]], as_json: bool, line: str) -> None:
    """Rows on stdout: a JSON list, or one `line.format(**row)` each (text fields escaped:
    they come from the dataset)."""
    if as_json:
        _write_json(rows)
    else:
        for row in rows:
            shown = {k: safe_text(v) if isinstance(v, str) else v for k, v in row.items()}
            print(line.format(**shown))


def _report_problems(ws: Workspace) -> None:
    for problem in ws.problems:
        _err_file(problem.path, problem.message)


def _no_strategy(dataset: object) -> UsageError:
    return UsageError(
        f"{dataset}: no working strategy yet; give one with --profile "
        "(a file or a library name), or curate the dataset in the app first"
    )


def _open(dataset: str, **kwargs: object) -> Workspace:
    """`Workspace.open` showing its progress on stderr (the display ends once it is open)."""
    with Reporter() as progress:
        return Workspace.open(dataset, progress=progress, **kwargs)  # type: ignore[arg-type]


def _need_a_strategy(dataset: str, profile: Strategy | None) -> None:
    """Refuse before opening (which would create a state) a dataset that has no strategy
    when none is given."""
    if profile is None and not state_exists(check_root(dataset)):
        raise _no_strategy(dataset)


def cmd_apply(args: argparse.Namespace) -> int:
    profile, ref = _load_profile_arg(args.profile)
    _need_a_strategy(args.dataset, profile)
    with _open(args.dataset, strategy=profile, read_only=args.dry_run) as ws:
        if not ws.has_strategy:
            raise _no_strategy(ws.root)
        strategy = _with_overrides(ws.strategy, args.pattern, args.trigger)
        strategy = _with_thresholds(strategy, args.general_threshold, args.character_threshold)
        _report_problems(ws)
        if args.dry_run:
            ws.override_strategy(strategy)
            out = sys.stdout
            for entry, caption in sorted(ws.render_all(), key=lambda ec: ec[0].image):
                out.write(f"{quote_path(entry.image)}\t{safe_text(caption.rstrip(chr(10)))}\n")
            return EXIT_OK
        with Reporter() as progress:
            report = write_captions(
                ws,
                strategy,
                ref,
                overwrite_changed=args.overwrite,
                adopt_changed=args.adopt,
                progress=progress,
            )
        for path, why in report.skipped + report.failed:
            _err_file(path, why)
        print(report.summary(), file=sys.stderr)
        return EXIT_FAILURE if report.failed else EXIT_OK


def cmd_tags(args: argparse.Namespace) -> int:
    profile, _ = _load_profile_arg(args.profile)
    with _open(args.dataset, strategy=profile, read_only=True) as ws:
        _report_problems(ws)  # e.g. a caption that is a FIFO: its tags are not counted
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
    from tui.core.writeback import restore

    with _open(args.dataset) as ws:
        with Reporter() as progress:
            report = restore(ws, progress=progress)
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
        if profile_exists(path):
            raise UsageError(f"{path}: a profile named {args.name!r} already exists")
        save_profile(
            Strategy(name=args.name, trigger=args.trigger.strip(), pattern=args.pattern), path
        )
        print(quote_path(str(path)))
        return EXIT_OK
    if args.profile_command == "list":
        for path in list_library():
            try:
                strategy = load_profile(path)
                detail = f"trigger={safe_text(strategy.trigger) or '-'}\tpattern={strategy.pattern}"
            except ProfileError as exc:
                detail = f"unreadable: {safe_text(str(exc))}"
            print(f"{safe_text(path.stem)}\t{detail}\t{quote_path(str(path))}")
        return EXIT_OK
    # show: TOML escapes C0 in strings; the rest is escaped the TOML way (still valid TOML).
    path = resolve_profile(args.name)
    sys.stdout.write(safe_json(dump_profile(load_profile(path))))
    return EXIT_OK


def cmd_suggest(args: argparse.Namespace) -> int:
    profile, _ = _load_profile_arg(args.profile)
    with _open(args.dataset, strategy=profile, read_only=True) as ws:
        counts = ws.tag_counts()
        implied = workspace_implied(ws)
        characters = character_tags(ws.root)
        suggestions = suggest_buckets(counts, len(ws.images), ws.strategy, implied, characters)
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
        ws = _open(args.dataset, strategy=profile)
    except (CorruptStateError, NewerStateError):
        raise  # a state that cannot be trusted is not read either
    except StateError as exc:
        # Locked by the app (or no writable state): measure without caching.
        _err(f"note: {exc}; measuring without the cache")
        ws = _open(args.dataset, strategy=profile, read_only=True)
    with ws:
        from tui.core.tokens import HOW_TO_ENABLE, load_counter

        tokens = load_counter()
        if tokens is None:
            _err(f"note: {HOW_TO_ENABLE}")
        with Reporter() as progress:
            measures = measure_images(ws, progress.step("measure"))
        findings = run_checks(ws, measures, tokens)
        if args.json:
            rows = [
                {
                    "kind": f.kind,
                    "severity": f.severity,
                    "message": f.message,
                    "images": list(f.images),
                    "tag": f.tag,
                    # Only on the findings about how a trainer reads the files.
                    **({"trainer": f.trainer} if f.trainer else {}),
                }
                for f in findings
            ]
            _write_json(rows)
        else:
            for f in findings:
                print(f"{f.kind}\t{safe_text(f.message)}")
                for image in f.images[:CHECK_IMAGES_SHOWN]:
                    print(f"    {quote_path(image)}")
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
        sys.stdout.write(safe_text(render_guide(profile), keep_lines=True))
        return EXIT_OK
    with _open(args.dataset, strategy=profile, read_only=True) as ws:
        if not ws.has_strategy:
            raise _no_strategy(ws.root)
        sys.stdout.write(safe_text(guide_text(ws), keep_lines=True))
        return EXIT_OK


def _export_target(ws: Workspace, output: str, force: bool) -> Path:
    """Where `-o` writes: never over one of the dataset's images or captions, nor in its
    state, nor over an existing file without --force."""
    target = Path(os.path.realpath(Path(output).expanduser()))
    shown = quote_path(output)
    if target.is_dir():
        raise UsageError(f"{shown}: is a folder; give a file name in it (e.g. kohya.toml)")
    if not target.parent.is_dir():
        raise UsageError(
            f"{quote_path(str(target.parent))}: no such folder; create it or give another -o FILE"
        )
    root = ws.root
    if root == target or root in target.parents:
        rel = target.relative_to(root).as_posix()
        own = {e.image for e in ws.images} | {e.caption for e in ws.images}
        if (
            rel in own
            or rel.split("/", 1)[0] == STATE_DIR
            or rel.endswith(ws.strategy.caption.extension)
        ):
            raise UsageError(
                f"{shown}: is (or could be) one of the dataset's images, captions or state; "
                "write the config elsewhere"
            )
    if target.exists() and not force:
        raise UsageError(f"{shown}: exists; add --force to replace it, or give another -o FILE")
    return target


def _folder_triggers(ws: Workspace) -> dict[str, list[str]]:
    """Each image folder's leading triggers: those every one of its images starts with (the
    character's, and the concept's where the whole folder is one concept)."""
    out: dict[str, list[str]] = {}
    for entry in ws.images:
        folder = entry.image.rsplit("/", 1)[0] if "/" in entry.image else ""
        lead = ws.leading_triggers(entry.image)
        common = out.get(folder)
        if common is None:
            out[folder] = lead
        else:
            n = 0
            while n < min(len(common), len(lead)) and common[n] == lead[n]:
                n += 1
            out[folder] = common[:n]
    return out


def cmd_export(args: argparse.Namespace) -> int:
    from tui.core.export import ExportError, ExportPlan, build_subsets, render_export
    from tui.core.trainers import find_unseen

    profile, _ = _load_profile_arg(args.profile)
    _need_a_strategy(args.dataset, profile)
    with _open(args.dataset, strategy=profile, read_only=True) as ws:
        if not ws.has_strategy:
            raise _no_strategy(ws.root)
        strategy = ws.strategy
        fmt = strategy.caption
        images = [e.image for e in ws.images]
        triggers = ws.triggers_in_use()
        plan = ExportPlan(
            ws.root,
            build_subsets(images, fmt.extension, folder_triggers=_folder_triggers(ws)),
            args.resolution,
            fmt.separator,
            fmt.escape_parentheses,
        )
        try:
            text = render_export(args.trainer, plan)
        except ExportError as exc:
            raise UsageError(safe_text(str(exc))) from None
        target = _export_target(ws, args.output, args.force) if args.output else None
        with Reporter() as progress:
            stale = 0
            for n, image in enumerate(images, start=1):
                stale += ws.will_change(image)
                if n % 1000 == 0 or n == len(images):
                    progress("render", n, len(images))
        if stale:
            _err(
                f"note: {stale} caption file(s) differ from what the strategy renders; the "
                f"trainer reads the files: run `{PROG} apply` first"
            )
        # What this trainer will not see, as notes on stderr (the file is written anyway).
        captions = {e.image: c for e, c in ws.render_all()}
        empty = ws.empty_on_disk([i for i, c in captions.items() if not c])
        for f in find_unseen(images, fmt.extension, captions, triggers, empty):
            # The export itself takes care of kohya's folder mode and of a comma trigger.
            if f.trainer in ("all", args.trainer) and f.kind not in EXPORT_HANDLES:
                shown = f", e.g. {quote_path(f.images[0])}" if f.images else ""
                _err(f"note: {safe_text(f.message)}{shown}")
        if target is None:
            # UTF-8 whatever the terminal's locale: the file is for a trainer to read.
            out = getattr(sys.stdout, "buffer", None)
            if out is None:
                sys.stdout.write(text)
            else:
                sys.stdout.flush()
                out.write(text.encode("utf-8"))
                out.flush()
            return EXIT_OK
        try:
            write_file_atomic(target, text.encode("utf-8"))
        except OSError as exc:
            _err_file(str(target), f"not written: {exc.strerror or exc}")
            return EXIT_FAILURE
        print(f"{args.trainer} config written to {quote_path(str(target))}", file=sys.stderr)
        return EXIT_OK


def cmd_find(args: argparse.Namespace) -> int:
    from tui.core.query import QueryError, parse_query, workspace_index

    try:
        parse_query(args.query)  # a malformed query is reported before the dataset is read
    except QueryError as exc:
        raise UsageError(f"query at {exc}") from None
    profile, _ = _load_profile_arg(args.profile)
    with _open(args.dataset, strategy=profile, read_only=True) as ws:
        index = workspace_index(ws)
        try:
            found = index.match(args.query)
        except QueryError as exc:
            raise UsageError(f"query at {exc}") from None
        out = sys.stdout
        for image in found:
            out.write(quote_path(image) + "\n")
        print(f"{len(found)} of {len(index.images)} images", file=sys.stderr)
        return EXIT_OK if found else EXIT_FAILURE


def _batch_tags(values: list[str], ws: Workspace) -> list[str]:
    """The tags of `--add`/`--remove`, read as a caption would be (`a, b` is two tags)."""
    from tui.core.captions import parse_tags

    underscores = ws.strategy.caption.underscores
    return list(dict.fromkeys(t for v in values for t in parse_tags(v, underscores)))


def cmd_edit(args: argparse.Namespace) -> int:
    from tui.core.query import QueryError, parse_query, workspace_index

    if not args.add and not args.remove:
        raise UsageError("edit: give at least one --add TAG or --remove TAG")
    if args.where is not None:
        try:
            parse_query(args.where)  # before the dataset is read, as `find` does
        except QueryError as exc:
            raise UsageError(f"query at {exc}") from None
    with _open(args.dataset) as ws:
        add, remove = _batch_tags(args.add, ws), _batch_tags(args.remove, ws)
        if not add and not remove:
            raise UsageError("edit: --add and --remove hold no tag")
        if set(map(str.casefold, add)) & set(map(str.casefold, remove)):
            raise UsageError("edit: a tag cannot be both added and removed")
        if args.where is None:
            found = [e.image for e in ws.images]
        else:
            try:
                found = workspace_index(ws).match(args.where)
            except QueryError as exc:
                raise UsageError(f"query at {exc}") from None
        touched = ws.edit_many(found, add=add, remove=remove)
        if touched:
            _err(
                f"{touched} image(s) edited of the {len(found)} found (one edit: ctrl+z in "
                "the app undoes it); no caption written: `apply` writes them"
            )
        else:
            _err(f"nothing to change on the {len(found)} image(s) found; nothing recorded")
        return EXIT_OK


def cmd_alias(args: argparse.Namespace) -> int:
    if args.remove is not None:
        if args.tags:
            raise UsageError("alias: either FROM TO or --remove FROM, not both")
        source, target = args.remove, None
    elif len(args.tags) == 2:
        source, target = args.tags
        if not source.strip() or not target.strip():
            raise UsageError("alias: FROM and TO must be tags, not empty")
    else:
        raise UsageError("alias: give FROM TO (rename FROM) or --remove FROM")
    with _open(args.dataset) as ws:
        try:
            ws.set_alias(source, target)
        except ValueError as exc:
            raise UsageError(f"alias: {exc}") from None
        key = source.strip().casefold()
        on = sum(1 for e in ws.images if any(t.casefold() == key for t in ws.image_tags(e.image)))
        if target is None:
            _err(f"alias of {source.strip()!r} removed; no caption written: `apply` writes them")
        else:
            merged = any(t.casefold() == target.strip().casefold() for t in ws.tag_counts())
            what = "merged into" if merged else "renamed to"
            _err(
                f"{source.strip()!r} {what} {target.strip()!r} on {on} image(s) (one edit: "
                "ctrl+z in the app undoes it); no caption written: `apply` writes them"
            )
        return EXIT_OK


def _edit_argv(argv: list[str]) -> list[str]:
    """`edit`'s option values glued to their option: `--where -blurry` and `--remove -_-`
    are a query and a tag, not unknown options."""
    out = [argv[0]]
    rest = iter(argv[1:])
    for arg in rest:
        if arg in ("--where", "--add", "--remove"):
            value = next(rest, None)
            out.append(arg if value is None else f"{arg}={value}")
        else:
            out.append(arg)
    return out


def _positionals_last(argv: list[str], valued: tuple[str, ...]) -> list[str]:
    """A subcommand's arguments with its positionals after `--`, so that a query like
    `-blurry, smile` or a tag like `-_-` is read as itself, not as an unknown option.
    `valued` are its options that take a value (glued to it: `--remove=-_-`)."""
    options: list[str] = []
    positionals: list[str] = []
    rest = iter(argv[1:])
    for arg in rest:
        if arg == "--":
            positionals.extend(rest)
        elif arg in valued:
            value = next(rest, None)
            options.append(arg if value is None else f"{arg}={value}")
        elif arg.startswith(tuple(f"{v}=" for v in valued)) or arg in ("-h", "--help"):
            options.append(arg)
        else:
            positionals.append(arg)
    return [argv[0], *options, "--", *positionals]


def cmd_tag(args: argparse.Namespace) -> int:
    # numpy and onnxruntime are imported inside the tagger, only once this command runs.
    from tui.core.scores import MODEL_SPEC_KEY, ScoreStore, ScoreStoreError
    from tui.core.tagger import TaggerError
    from tui.core.tagger.pipeline import open_tagger, plan_tagging

    root = check_root(args.dataset)
    try:
        # The model first: a missing model or dependency writes nothing in the dataset.
        tagger, labels = open_tagger(args.model, args.device, args.download)
        if tagger.report.refused:
            _err(f"error: {tagger.report.message}; use --device auto to run on the CPU anyway")
            return EXIT_USAGE
        _err(tagger.report.message)
        with ScoreStore.open_for_tagging(root) as store:
            # What the app tags with next time (ctrl+t) when it is given no --model.
            spec = Path(args.model).expanduser()
            store.set_meta(MODEL_SPEC_KEY, str(spec.resolve()) if spec.is_dir() else args.model)
            job, problems = plan_tagging(
                root, tagger, labels, store, batch_size=args.batch_size, retag=args.retag
            )
            for path, why in problems:
                _err_file(path, why)
            with Reporter() as progress:
                progress("tag", 0, len(job.todo))  # the rate counts from here
                tagged, failures = job.run(
                    store,
                    progress.step("tag"),
                    lambda path, why: progress.echo(_file_line(path, f"{why}: skipped")),
                )
    except TaggerError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    except ScoreStoreError as exc:
        _err(f"error: {exc}")
        return EXIT_FAILURE
    failed = len(failures) + len(problems)
    print(f"{tagged} tagged, {job.already} already tagged, {failed} failed", file=sys.stderr)
    return EXIT_FAILURE if failed else EXIT_OK


def cmd_reset_state(args: argparse.Namespace) -> int:
    root = check_root(args.dataset)
    backup = reset_state(root)
    if backup is None:
        print(f"{root}: no state to reset; nothing changed", file=sys.stderr)
        return EXIT_OK
    print(
        f"moved the state to {backup}; the caption files are untouched, and the next open "
        "starts a new state from the captions as they are now (the backup keeps the old "
        "edits and the copies of the original captions)",
        file=sys.stderr,
    )
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
        if argv[0] == "find":
            argv = _positionals_last(argv, ("--profile",))
        elif argv[0] == "edit":
            argv = _edit_argv(argv)
        elif argv[0] == "alias":
            argv = _positionals_last(argv, ("--remove",))
        args = build_parser().parse_args(argv)
        handler = {
            "apply": cmd_apply,
            "tags": cmd_tags,
            "restore": cmd_restore,
            "profile": cmd_profile,
            "suggest": cmd_suggest,
            "check": cmd_check,
            "guide": cmd_guide,
            "export": cmd_export,
            "find": cmd_find,
            "edit": cmd_edit,
            "alias": cmd_alias,
            "tag": cmd_tag,
            "reset-state": cmd_reset_state,
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
