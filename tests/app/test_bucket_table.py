"""The app's keys, letters, colours and help come from the core's bucket table, so a row
added there shows up everywhere the user meets buckets."""

from __future__ import annotations

from pathlib import Path

from tests.app.conftest import settle
from tui.app.app import CuratorApp
from tui.app.bindings import APP_BINDINGS
from tui.app.screens.help import key_table
from tui.core.buckets import ALL_BUCKETS, PATTERN_TABLE, SORTED_BUCKETS


def test_every_bucket_has_its_key_and_help_row_and_every_pattern_its_line() -> None:
    keys = {b.action: b.key for b in APP_BINDINGS}
    help_text = key_table({})
    for bucket in ALL_BUCKETS:
        assert keys[f"bucket('{bucket.name}')"] == bucket.key
        assert f"{bucket.key} {bucket.letter} {bucket.name}" in help_text
        assert f"{bucket.name}: {bucket.meaning}\n" in help_text
    for pattern in PATTERN_TABLE:
        assert f"{pattern.name} (removes " in help_text
        # The first clause of its meaning, from the same table.
        assert f"): {pattern.meaning.split('. ')[0].split('; ')[0].rstrip('.')}" in help_text


async def test_a_theme_without_bucket_colours_gets_the_tables(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy, theme="textual-dark")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        for bucket in ALL_BUCKETS:
            assert app.theme_variables[f"bucket-{bucket.name}"] == bucket.colour


async def test_the_tag_list_shows_each_buckets_letter(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        tag = app.tags.current
        assert tag is not None and app.ws is not None
        for bucket in SORTED_BUCKETS:
            app.tags.move_to(tag)
            await pilot.press(bucket.key)
            assert app.tags.row_text(tag, 40).plain.startswith(f" {bucket.letter} ")
