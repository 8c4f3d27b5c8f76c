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


# ---- the app asks the core; it never reaches into it nor writes files ------------------------

APP = PACKAGE / "app"
# The workspace's insides: the app asks the workspace's methods instead.
WORKSPACE_INTERNALS = frozenset({"state", "store"})
# Calls that write, move or remove a file (the core's writer, a profile save, Path and os).
WRITING_CALLS = frozenset(
    {
        "write_file_atomic",
        "write_files_atomic",
        "save_profile",
        "write_text",
        "write_bytes",
        "unlink",
        "rmdir",
        "touch",
        "mkdir",
    }
)
# Called on `os` or `shutil` only: `str.replace` is no file operation.
OS_WRITING_CALLS = frozenset({"rename", "replace", "remove", "rmtree", "makedirs", "copy"})


def reaches_into_core(source: str) -> list[str]:
    """Where a module of the app imports a private name of the core, or touches a private or
    internal attribute of the workspace (`ws._x`, `ws.state`, `self.workspace.store`, ...)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tui.core"):
            if any(part.startswith("_") for part in (node.module or "").split(".")):
                found.append(f"line {node.lineno}: imports {node.module}")
            found.extend(
                f"line {node.lineno}: imports {node.module}.{a.name}"
                for a in node.names
                if a.name.startswith("_")
            )
        elif isinstance(node, ast.Import):
            found.extend(
                f"line {node.lineno}: imports {a.name}"
                for a in node.names
                if a.name.startswith("tui.core")
                and any(p.startswith("_") for p in a.name.split("."))
            )
        elif isinstance(node, ast.Attribute) and _is_internal(node):
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


def _is_internal(node: ast.Attribute) -> bool:
    if node.attr in WORKSPACE_INTERNALS:
        return True
    return node.attr.startswith("_") and not node.attr.startswith("__") and _is_ws(node.value)


def _is_ws(node: ast.expr) -> bool:
    """`ws`, `workspace`, `self.ws` or `self.workspace`: how the app names the workspace."""
    if isinstance(node, ast.Name):
        return node.id in ("ws", "workspace")
    return isinstance(node, ast.Attribute) and node.attr in ("ws", "workspace")


def writes_files(source: str) -> list[str]:
    """Where a module opens a file for writing or calls something that writes one."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            if isinstance(node, ast.ImportFrom):
                found.extend(
                    f"line {node.lineno}: imports {a.name}"
                    for a in node.names
                    if a.name in WRITING_CALLS
                )
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name == "open":
            mode = node.args[1] if len(node.args) > 1 else None
            mode = next((k.value for k in node.keywords if k.arg == "mode"), mode)
            # A mode that is not a literal may write: reported too.
            if mode is not None and not (
                isinstance(mode, ast.Constant) and not set(str(mode.value)) & set("wax+")
            ):
                found.append(f"line {node.lineno}: open for writing")
        elif name in WRITING_CALLS or (
            name in OS_WRITING_CALLS
            and isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in ("os", "shutil")
        ):
            found.append(f"line {node.lineno}: {name}()")
    return found


def app_files() -> list[Path]:
    files = sorted(APP.rglob("*.py"))
    assert len(files) > 5  # the app's modules are there to check
    return files


def test_the_app_checkers_see_violations():
    # Guard against checkers that pass because they find nothing.
    bad_core = (
        "from tui.core.workspace import _read_one\n"
        "from tui.core._hidden import x\n"
        "def f(ws, self):\n"
        "    ws.state.image_edits\n"
        "    self.ws.store.mark_saved()\n"
        "    self.workspace._counts\n"
    )
    assert len(reaches_into_core(bad_core)) == 5
    assert reaches_into_core("def f(ws):\n    ws.removed_on('a.png')\n    ws.__class__\n") == []
    bad_writes = (
        "from tui.core.writer import write_file_atomic\n"
        "open(p, 'w')\n"
        "open(p, mode='ab')\n"
        "open(p, m)\n"
        "p.write_text('x')\n"
        "p.unlink()\n"
        "save_profile(s, p)\n"
        "os.replace(a, b)\n"
    )
    assert len(writes_files(bad_writes)) == 8
    assert writes_files("open(p)\nopen(p, 'rb')\ns.replace('a', 'b')\np.read_bytes()\n") == []


def test_the_app_uses_only_the_cores_public_names():
    offenders = {
        str(f.relative_to(PACKAGE)): reaches_into_core(f.read_text(encoding="utf-8"))
        for f in app_files()
    }
    assert {f: where for f, where in offenders.items() if where} == {}


def test_no_module_of_the_app_writes_files():
    offenders = {
        str(f.relative_to(PACKAGE)): writes_files(f.read_text(encoding="utf-8"))
        for f in app_files()
    }
    assert {f: where for f, where in offenders.items() if where} == {}
