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
from tui.core.text import is_safe

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
    config = AppConfig()
    try:
        path = path or config_path()
        if not path.is_file():
            return config  # none yet (or a folder, or an XDG_CONFIG_HOME that is a file)
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
        config.warnings.append(f"{path}: ignored: {exc}")
        return config
    except RecursionError:
        config.warnings.append(f"{path}: ignored: nested too deeply")
        return config
    theme = data.get("theme", "")
    if isinstance(theme, str):
        config.theme = theme
    else:
        config.warnings.append(f'{path}: theme must be a string (theme = "curator-dark")')
    keymap = data.get("keymap", {})
    if not isinstance(keymap, dict):
        config.warnings.append(f'{path}: [keymap] must be a table of id = "keys"')
        keymap = {}
    for binding_id, keys in keymap.items():
        if isinstance(keys, str) and keys.strip() and is_safe(keys):
            config.keymap[binding_id] = keys
        else:
            config.warnings.append(f"{path}: keymap.{binding_id} must be a string of keys")
    return config
