"""Shared fixtures: tiny datasets on disk, a copy of the sample dataset, an isolated config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tui import cli

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_dataset"

# A few bytes are enough: the engine pairs files by name and never decodes an image.
TINY_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"

DatasetSpec = Mapping[str, "bytes | str | None"]


def write_dataset(root: Path, files: DatasetSpec) -> Path:
    """Write `files` under `root`: bytes as is, str as UTF-8, None as a tiny image."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.write_bytes(TINY_PNG)
        elif isinstance(content, str):
            path.write_bytes(content.encode("utf-8"))
        else:
            path.write_bytes(content)
    return root


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """`make_dataset({relpath: bytes | str | None}, name="ds")` → the dataset folder."""

    def make(files: DatasetSpec, name: str = "ds") -> Path:
        return write_dataset(tmp_path / name, files)

    return make


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A private copy of `sample_dataset/` (the repository's copy is never written)."""
    dest = tmp_path / "sample"
    shutil.copytree(SAMPLE, dest, symlinks=True, ignore=shutil.ignore_patterns(".lora-curator"))
    return dest


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> Path:
    """Every test gets its own `$XDG_CONFIG_HOME`: the user's profile library is never touched."""
    config = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    # Nor the user's Hugging Face cache: a CLIP tokenizer there would change what check says.
    monkeypatch.setenv("HF_HUB_CACHE", str(config / "no-hf-cache"))
    return config


def snapshot_tree(root: Path) -> dict[str, tuple[str, bytes | str | None, int, int]]:
    """Everything below `root`: kind, content (bytes, link target), mode and mtime (ns)."""
    out: dict[str, tuple[str, bytes | str | None, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path), st.st_mode, st.st_mtime_ns)
            elif path.is_dir():
                out[rel] = ("dir", None, st.st_mode, st.st_mtime_ns)
            else:
                out[rel] = ("file", path.read_bytes(), st.st_mode, st.st_mtime_ns)
    return out


@pytest.fixture
def tree_snapshot() -> Callable[[Path], dict]:
    return snapshot_tree


@pytest.fixture
def run_cli(isolated_config: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python -m tui ARGS...` as a real subprocess, with the test's config folder."""

    def run(*args: str | os.PathLike[str], cwd: Path | None = None, env: dict | None = None):
        full_env = dict(os.environ)
        full_env["XDG_CONFIG_HOME"] = str(isolated_config)
        if env:
            full_env.update(env)
        return subprocess.run(
            [sys.executable, "-m", "tui", *map(str, args)],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
        )

    return run


@pytest.fixture
def cli_main(capsys) -> Callable[..., tuple[int, str, str]]:
    """`lora-curator ARGS...` in this process (so monkeypatches apply): (exit code, stdout,
    stderr)."""

    def run(*args: str | os.PathLike[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = cli.main([os.fspath(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run
