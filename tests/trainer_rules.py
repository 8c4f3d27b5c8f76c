"""Checking exported files against the trainers' rules, as data (tui/core/data/trainers.toml).

The tests never import a trainer: each file is parsed (tomllib, json, a strict little YAML
reader for the one shape we write) and every key, level and type is checked against the
rules, the way the trainer's own loader would take it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RULES_FILE = Path(__file__).resolve().parent.parent / "tui" / "core" / "data" / "trainers.toml"
RULES: dict[str, Any] = tomllib.loads(RULES_FILE.read_text(encoding="utf-8"))


def _type_ok(kind: str, value: object) -> bool:
    """Whether `value` (as parsed) is of the rules' `kind`; bools are never ints here."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind == "int":
        return is_int
    if kind == "float":
        return isinstance(value, float)
    if kind == "number":
        return is_int or isinstance(value, float)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "table":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    if kind == "int-or-pair":
        return is_int or (
            isinstance(value, list) and len(value) == 2 and all(_type_ok("int", v) for v in value)
        )
    if kind == "int-or-list":
        return is_int or (isinstance(value, list) and all(_type_ok("int", v) for v in value))
    if kind.startswith("enum:"):
        return isinstance(value, str) and value in kind[5:].split("|")
    raise AssertionError(f"unknown type {kind!r} in {RULES_FILE}")


def violations(trainer: str, level: str, table: dict[str, Any]) -> list[str]:
    """What the trainer would reject (or drop) in one table of its file at `level`."""
    schema = RULES[trainer]["schema"][level]
    required = RULES[trainer].get("required", {}).get(level, [])
    out = [f"{level}: unknown key {k!r}" for k in table if k not in schema]
    out += [
        f"{level}.{k}: {v!r} is not {schema[k]}"
        for k, v in table.items()
        if k in schema and not _type_ok(schema[k], v)
    ]
    out += [f"{level}: missing {k!r}" for k in required if k not in table]
    return out


def kohya_violations(doc: dict[str, Any]) -> list[str]:
    """kohya's ConfigSanitizer, as data: every level, key and type of a dataset config."""
    out = violations("kohya", "top", doc)
    out += violations("kohya", "general", doc.get("general", {}))
    for dataset in doc.get("datasets", []):
        out += violations("kohya", "datasets", dataset)
        for subset in dataset.get("subsets", []):
            out += violations("kohya", "subsets", subset)
    return out


def onetrainer_violations(concepts: object) -> list[str]:
    """OneTrainer's concepts file: a list of concepts, their keys and types."""
    if not isinstance(concepts, list):
        return ["the concepts file is not a JSON list"]
    out: list[str] = []
    for concept in concepts:
        out += violations("onetrainer", "concept", concept)
        if isinstance(concept.get("text"), dict):
            out += violations("onetrainer", "text", concept["text"])
    return out


def ai_toolkit_violations(block: dict[str, Any]) -> list[str]:
    """ai-toolkit's datasets block: `datasets` is a list of dataset entries."""
    out = [f"top: unknown key {k!r}" for k in block if k != "datasets"]
    datasets = block.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        return [*out, "no datasets list"]
    for entry in datasets:
        out += violations("ai-toolkit", "dataset", entry)
    return out


def parse_kohya(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def parse_onetrainer(text: str) -> Any:
    return json.loads(text)


_ITEM = re.compile(r"^  - ([a-z_]+): (.+)$")
_KEY = re.compile(r"^    ([a-z_]+): (.+)$")


def _scalar(raw: str) -> object:
    """A YAML scalar of the kinds we write: a double-quoted string (our escapes are JSON's),
    an int, true/false. Anything else fails the test."""
    if raw.startswith('"'):
        assert raw.endswith('"') and len(raw) >= 2, f"unterminated string: {raw!r}"
        return json.loads(raw)
    if raw in ("true", "false"):
        return raw == "true"
    assert re.fullmatch(r"-?[0-9]+", raw), f"not a scalar we write: {raw!r}"
    return int(raw)


def parse_ai_toolkit(text: str) -> dict[str, Any]:
    """Our `datasets:` block: comments, `datasets:`, then `  - key: value` items with
    `    key: value` lines. Strict: any other line fails."""
    lines = [ln for ln in text.split("\n") if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines and lines[0] == "datasets:", f"does not start with 'datasets:': {lines[:1]!r}"
    entries: list[dict[str, object]] = []
    for line in lines[1:]:
        item = _ITEM.match(line)
        key = _KEY.match(line)
        if item:
            entries.append({item.group(1): _scalar(item.group(2))})
        elif key and entries:
            assert key.group(1) not in entries[-1], f"duplicate key: {line!r}"
            entries[-1][key.group(1)] = _scalar(key.group(2))
        else:
            raise AssertionError(f"not a line of a datasets block: {line!r}")
    return {"datasets": entries}


PARSERS = {"kohya": parse_kohya, "onetrainer": parse_onetrainer, "ai-toolkit": parse_ai_toolkit}
CHECKERS = {
    "kohya": kohya_violations,
    "onetrainer": onetrainer_violations,
    "ai-toolkit": ai_toolkit_violations,
}


def folders_of(trainer: str, parsed: Any) -> list[str]:
    """The image folders a parsed file names, in order."""
    if trainer == "kohya":
        return [s["image_dir"] for d in parsed["datasets"] for s in d["subsets"]]
    if trainer == "onetrainer":
        return [c["path"] for c in parsed]
    return [d["folder_path"] for d in parsed["datasets"]]
