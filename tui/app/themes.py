"""The project's themes, read from the `themes` package (TOML files shipped as data)."""

from __future__ import annotations

import sys
from importlib import resources

from textual.theme import Theme

from tui.core.buckets import ALL_BUCKETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_THEME = "curator-dark"
_THEME_KEYS = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "warning",
    "error",
    "success",
)


def bucket_variable(bucket: str) -> str:
    """The theme variable holding a bucket's colour (a theme's `[variables]` may set it)."""
    return f"bucket-{bucket}"


def bucket_colour_defaults() -> dict[str, str]:
    """Each bucket's colour from the core's table, for themes that do not set their own."""
    return {bucket_variable(b.name): b.colour for b in ALL_BUCKETS}


def load_themes() -> list[Theme]:
    """Every theme in the `themes` package, by file name."""
    themes: list[Theme] = []
    folder = resources.files("themes")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        themes.append(
            Theme(
                name=data["name"],
                dark=bool(data.get("dark", True)),
                variables=dict(data.get("variables", {})),
                **{key: data[key] for key in _THEME_KEYS if key in data},
            )
        )
    return themes


def stylesheet() -> str:
    """The app's stylesheet (theme variables only, no hard-coded colours)."""
    return resources.files("themes").joinpath("curator.tcss").read_text(encoding="utf-8")
