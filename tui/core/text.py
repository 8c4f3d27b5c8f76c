"""Making text from a dataset or a profile safe to show on a terminal.

Tags, file names, trigger words and profile names are data: a terminal would obey an escape
sequence in them (set the window title, clear the screen, ...). Everything that shows such text,
the CLI and the app alike, passes it through `safe_text` (or `quote_path` for one path per
line), which writes each control character visibly as a C escape (`\\x1b`, `\\x9b`, `\\n`).
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls (U+0080-U+009F: `\x9b` is a CSI on many terminals), and the
# bidirectional overrides/isolates, which reorder what the user reads (a name can look like
# another one).
# Also the lone surrogates Python gives for the bytes of a name that is not valid UTF-8: shown
# as the byte they stand for (`\xff`); printed raw they would fail to encode.
_UNSAFE = "\x00-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff"
_CONTROL = re.compile(f"[{_UNSAFE}]")
# What json.dumps and tomli_w leave raw (they escape C0 themselves; their newlines are layout).
# A surrogate becomes `\udcXX`: valid JSON, and `os.fsencode(json.loads(...))` gives the
# name's bytes back.
_UNESCAPED_BY_JSON = re.compile(
    "[\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)
_NEEDS_QUOTES = re.compile(f'[{_UNSAFE}\\\\"]')
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", '"': '\\"'}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    known = _ESCAPES.get(ch)
    if known is not None:
        return known
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a name that is not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _escape_unless_line(match: re.Match[str]) -> str:
    ch = match.group()
    return ch if ch in "\n\t" else _escape(match)


def safe_text(text: str, keep_lines: bool = False) -> str:
    """`text` with every control character written as a visible C escape (`\\x1b`, `\\n`);
    with `keep_lines`, newlines and tabs stay (text of several lines made by us)."""
    if keep_lines:
        return _CONTROL.sub(_escape_unless_line, text)
    return _CONTROL.sub(_escape, text)


def is_safe(text: str) -> bool:
    """True when `text` shows as it is (no control character to escape)."""
    return _CONTROL.search(text) is None


def quote_path(path: str) -> str:
    """A path as one line of output: as it is, or (when it holds a control character, a
    backslash or a double quote) in double quotes with C escapes, the way git writes it."""
    if not _NEEDS_QUOTES.search(path):
        return path
    return '"' + _NEEDS_QUOTES.sub(_escape, path) + '"'


def safe_json(text: str) -> str:
    """JSON or TOML text (`json.dumps(..., ensure_ascii=False)` and tomli_w escape C0 only)
    with DEL, C1 and the other unsafe characters escaped too: they only occur inside strings,
    where `\\uXXXX` means the same character, so the document is unchanged."""
    return _UNESCAPED_BY_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
