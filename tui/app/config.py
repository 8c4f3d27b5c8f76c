"""The user's settings: `$XDG_CONFIG_HOME/lora-curator/config.toml`.

```toml
theme = "curator-dark"
[keymap]
next-image = "n"          # binding id = "keys" (comma-separated for several)
```
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from tui.core.profile import config_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class AppConfig:
    theme: str = ""
    keymap: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def config_path() -> Path:
    return config_dir() / "config.toml"


def load_config(path: Path | None = None) -> AppConfig:
    """Read the config; a broken file gives warnings (shown in the app), never a crash."""
    path = path or config_path()
    config = AppConfig()
    if not path.exists():
        return config
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        config.warnings.append(f"{path}: ignored: {exc}")
        return config
    theme = data.get("theme", "")
    if isinstance(theme, str):
        config.theme = theme
    keymap = data.get("keymap", {})
    if not isinstance(keymap, dict):
        config.warnings.append(f'{path}: [keymap] must be a table of id = "keys"')
        keymap = {}
    for binding_id, keys in keymap.items():
        if isinstance(keys, str) and keys.strip():
            config.keymap[binding_id] = keys
        else:
            config.warnings.append(f"{path}: keymap.{binding_id} must be a string of keys")
    return config
