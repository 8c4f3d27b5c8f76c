"""The engine never imports Textual, and neither do the headless commands (start-up cost)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import tui

PACKAGE = Path(tui.__file__).resolve().parent
CORE = PACKAGE / "core"
SAMPLE = PACKAGE.parent / "sample_dataset"
UI_MODULES = ("textual", "rich_pixels", "tui.app")


def imported_modules(path: Path, top_level_only: bool = False) -> set[str]:
    """Modules a source file imports (relative imports resolved against the tui package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


def is_ui(module: str) -> bool:
    return any(module == ui or module.startswith(ui + ".") for ui in UI_MODULES)


def test_the_checker_sees_imports(tmp_path):
    # Guard against a checker that passes because it finds nothing.
    names = imported_modules(PACKAGE / "cli.py")
    assert "tui.core.workspace" in names
    assert "tui.app.main" in names  # imported inside run_app only
    assert "tui.app.main" not in imported_modules(PACKAGE / "cli.py", top_level_only=True)


def test_core_never_imports_textual():
    files = sorted(CORE.rglob("*.py"))
    assert files
    offenders = {
        str(f.relative_to(PACKAGE)): sorted(m for m in imported_modules(f) if is_ui(m))
        for f in files
    }
    assert {f: m for f, m in offenders.items() if m} == {}


def test_cli_imports_textual_only_inside_the_app_launcher():
    assert (
        sorted(m for m in imported_modules(PACKAGE / "cli.py", top_level_only=True) if is_ui(m))
        == []
    )


_PROBE = """
import json, sys
from tui.cli import main
codes = [main(argv) for argv in json.loads(sys.argv[1])]
loaded = sorted(m for m in sys.modules
                if m.split(".")[0] in ("textual", "rich_pixels") or m.startswith("tui.app"))
print(json.dumps({"codes": codes, "loaded": loaded}))
"""


def test_headless_commands_do_not_load_textual(tmp_path):
    dataset = tmp_path / "sample"
    shutil.copytree(SAMPLE, dataset, ignore=shutil.ignore_patterns(".lora-curator"))
    profile = str(dataset / "profiles" / "kaede.toml")
    commands = [
        ["tags", str(dataset)],
        ["tags", str(dataset), "--json", "--profile", profile],
        ["apply", str(dataset), "--profile", profile, "--dry-run"],
        ["apply", str(dataset), "--profile", profile],
        ["restore", str(dataset)],
        ["profile", "new", "probe", "--trigger", "kd"],
        ["profile", "list"],
        ["profile", "show", "probe"],
    ]
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(commands)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0] * len(commands)
    assert report["loaded"] == []


def test_python_m_tui_does_not_import_textual_for_a_headless_command(tmp_path):
    dataset = tmp_path / "sample"
    shutil.copytree(SAMPLE, dataset, ignore=shutil.ignore_patterns(".lora-curator"))
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tui", "tags", str(dataset)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # -X importtime logs "import time: self | cumulative | module" for every import.
    imported = [
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    assert "tui.cli" in imported, "the probe saw no imports at all"
    assert [m for m in imported if is_ui(m)] == []
