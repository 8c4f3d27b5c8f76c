"""Dev script: how much of the frequent Danbooru tag vocabulary the built-in knowledge covers.

Reads the reference tag list (``name,category,post_count,aliases``, sorted by post count),
takes the top N tags of the chosen categories (default: general tags, category 0), classifies
each one with ``tui.core.tag_knowledge`` and prints the classified count, the bucket and
family distributions, the most frequent unclassified tags and the classification speed.
The reference file is only read, never copied.

Usage (from the repo root)::

    .venv/bin/python bench/knowledge_coverage.py [CSV] [--top 1000] [--categories 0,5]
        [--unclassified 60] [--show 300]

``--show N`` prints the first N tags with their suggested family, for spot-checking.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO_ROOT / ".." / "shared" / "data" / "danbooru-general-tags.csv"

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tui.core.tag_knowledge import TagKnowledge, load_knowledge  # noqa: E402


def read_tags(path: Path, categories: set[int]) -> list[tuple[str, int]]:
    """Return ``(name, post_count)`` rows of the wanted categories, in file order."""
    rows: list[tuple[str, int]] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if int(row["category"]) in categories:
                rows.append((row["name"], int(row["post_count"])))
    return rows


def time_classify(knowledge: TagKnowledge, names: list[str]) -> float:
    """Mean microseconds per :meth:`TagKnowledge.classify` call over ``names`` (uncached)."""
    start = time.perf_counter()
    for name in names:
        knowledge.classify(name)
    return (time.perf_counter() - start) / max(len(names), 1) * 1e6


def main(argv: list[str] | None = None) -> int:
    """Print the coverage report; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--top", type=int, default=1000, help="how many top tags to check")
    parser.add_argument("--categories", default="0", help="comma-separated, e.g. 0 or 0,5")
    parser.add_argument("--unclassified", type=int, default=60, help="how many to list")
    parser.add_argument("--show", type=int, default=0, help="print the first N classifications")
    args = parser.parse_args(argv)

    if not args.csv.is_file():
        print(f"reference CSV not found: {args.csv}", file=sys.stderr)
        return 1
    categories = {int(part) for part in args.categories.split(",") if part.strip()}
    every_row = read_tags(args.csv, categories)
    rows = every_row[: args.top]
    knowledge = load_knowledge()

    results = [(name, count, knowledge.classify(name)) for name, count in rows]
    classified = [item for item in results if item[2] is not None]
    total_posts = sum(count for _, count, _ in results) or 1
    covered_posts = sum(count for _, count, _ in classified)

    print(f"reference: {args.csv.resolve()}  categories: {sorted(categories)}")
    print(
        f"classified: {len(classified)} / {len(results)} top tags "
        f"({len(classified) / max(len(results), 1):.1%}); "
        f"weighted by post count: {covered_posts / total_posts:.1%}"
    )
    buckets = Counter(match.bucket for _, _, match in classified)
    print("buckets:  " + ", ".join(f"{b}={n}" for b, n in buckets.most_common()))
    families = Counter(match.family for _, _, match in classified)
    print("families: " + ", ".join(f"{f}={n}" for f, n in families.most_common()))

    if args.show:
        print(f"\nfirst {args.show} tags:")
        for rank, (name, _, match) in enumerate(results[: args.show], start=1):
            label = f"{match.bucket:<7} {match.family}" if match else "-       (unknown)"
            print(f"{rank:5}  {name.replace('_', ' '):<40} {label}")

    unknown = [(name, count) for name, count, match in results if match is None]
    if unknown and args.unclassified:
        print(f"\ntop {min(args.unclassified, len(unknown))} unclassified:")
        for name, count in unknown[: args.unclassified]:
            print(f"  {count:>9}  {name.replace('_', ' ')}")

    names = [name for name, _ in every_row]
    fresh = TagKnowledge.from_toml(
        (REPO_ROOT / "tui" / "core" / "data" / "tag_families.toml").read_text(encoding="utf-8")
    )
    print(f"\nspeed: {time_classify(fresh, names):.2f} µs per classify over {len(names)} tags")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
        sys.exit(0)
