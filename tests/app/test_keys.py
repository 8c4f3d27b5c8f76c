"""Every key of the curator, driven through the pilot: the state and the caption it shows."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandPalette

from tests.app.conftest import settle
from tui.app.app import CuratorApp
from tui.app.screens.dialogs import ConfirmScreen, ProfilePicker, PromptScreen
from tui.app.screens.help import HelpScreen
from tui.app.screens.reports import DiagnosticsScreen, GuideScreen
from tui.core.profile import library_path, load_profile, save_profile
from tui.core.strategy import CaptionFormat, Strategy
from tui.core.workspace import Workspace

TRAITS = ["bangs", "black hair", "grey pants", "grey socks", "orange shirt", "short hair"]
ABSORB = "1girl, blush, closed eyes, cushion, simple background, sitting, smile, solo, window"


async def test_worked_example_through_the_keys(worked_example: Path) -> None:
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("tab")  # the tag checklist
        assert app.focused is app.tags
        assert app.tags.current == "1girl"
        # bangs, black hair: `1` moves the cursor to the next unsorted tag by itself.
        await pilot.press("j", "1", "1")
        assert app.tags.current == "blush"
        await pilot.press("j", "j", "j")  # closed eyes, cushion, grey pants
        assert app.tags.current == "grey pants"
        await pilot.press("1", "1", "1", "1")  # grey pants, grey socks, orange shirt, short hair
        assert sorted(app.ws.strategy.tags_in("trait")) == TRAITS
        assert app.caption.shown.startswith(
            "1girl, bangs, black hair, blush, closed eyes, cushion, grey pants"
        )
        await pilot.press("P")
        assert app.ws.strategy.pattern == "absorb"
        assert app.caption.shown.split("   removed:")[0] == ABSORB
        assert app.caption.shown.endswith("removed: " + ", ".join(TRAITS))


async def test_bucket_keys_2_3_4_0(worked_example: Path) -> None:
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("tab", "2")  # 1girl → context
        s = app.ws.strategy
        assert s.bucket_of("1girl") == "context"
        await pilot.press("g", "j", "3")  # bangs → flaw
        assert app.ws.strategy.bucket_of("bangs") == "flaw"
        await pilot.press("g", "j", "4")  # bangs → drop: gone from the caption
        assert app.ws.strategy.bucket_of("bangs") == "drop"
        assert "bangs" not in app.caption.shown.split("   removed:")[0]
        await pilot.press("g", "j", "0")  # bangs → unsorted again: back in the caption
        assert app.ws.strategy.bucket_of("bangs") == "unsorted"
        assert "bangs" in app.caption.shown


async def test_space_removes_and_restores_on_this_image_only(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        first = app.image
        await pilot.press("tab")
        assert app.tags.current == "1girl"
        await pilot.press("space")
        assert not app.caption.shown.startswith("1girl")
        assert "1girl" not in app.ws.image_tags(first)
        # The other images keep it.
        await pilot.press("]")
        assert "1girl" in app.ws.image_tags(app.image)
        assert app.caption.shown.startswith("1girl")
        await pilot.press("[", "g", "space")
        assert app.image == first
        assert "1girl" in app.ws.image_tags(first)
        assert app.caption.shown.startswith("1girl")


async def test_add_tag_with_completion(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("a")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"grey so")
        await pilot.press("right")  # accept the completion from the dataset's tags
        await pilot.press("enter")
        assert "grey socks" in app.ws.image_tags(app.image)
        await pilot.press("a", *"red_scarf", "enter")  # underscores follow the profile
        assert "red scarf" in app.ws.image_tags(app.image)
        assert app.caption.shown.split("   removed:")[0].endswith("red scarf")
        assert app.tags.current == "red scarf"


async def test_next_previous_image_from_any_pane(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        images = [e.image for e in app.ws.images]
        assert app.image == images[0]
        await pilot.press("]")
        assert app.image == images[1]
        await pilot.press("tab", "]", "]")  # from the tag pane too
        assert app.focused is app.tags
        assert app.image == images[3]
        await pilot.press("[")
        assert app.image == images[2]
        expected = app.ws.caption_for(images[2]).rstrip("\n")
        assert app.caption.shown.startswith(expected)


async def test_list_movement_keys(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        images = [e.image for e in app.ws.images]
        await pilot.press("j", "j")
        assert app.image == images[2]
        await pilot.press("k")
        assert app.image == images[1]
        await pilot.press("G")
        assert app.image == images[-1]
        await pilot.press("g")
        assert app.image == images[0]
        await pilot.press("down", "down", "up")
        assert app.image == images[1]
        await pilot.press("tab", "G")
        assert app.tags.current == app.tags.rows[-1]


async def test_tab_moves_between_panes(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert app.focused is app.files
        await pilot.press("tab")
        assert app.focused is app.tags
        await pilot.press("shift+tab")
        assert app.focused is app.files


async def test_filter_and_escape(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        total = len(app.files.rows)
        await pilot.press("/", *"name:*_05*")  # the filter is a query: name: for file names
        assert app.files.rows == ["10_kaede/kaede_05.jpg"]
        assert app.image == "10_kaede/kaede_05.jpg"
        await pilot.press("enter")  # keeps the filter, back in the list
        assert app.focused is app.files
        assert len(app.files.rows) == 1
        await pilot.press("escape")
        assert len(app.files.rows) == total
        # In the tag list too; escape in the box clears at once.
        await pilot.press("tab", "/", *"hair")
        assert app.tags.rows and all("hair" in t for t in app.tags.rows)
        await pilot.press("escape")
        assert app.focused is app.tags
        assert "1girl" in app.tags.rows


async def test_v_toggles_image_and_dataset_view(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        image_rows = list(app.tags.rows)
        assert image_rows == list(app.ws.image_tags(app.image))
        await pilot.press("v")
        counts = app.ws.tag_counts()
        assert app.tags.dataset_view
        assert set(app.tags.rows) == set(counts)
        shown = [counts[t] for t in app.tags.rows]
        assert shown == sorted(shown, reverse=True)
        await pilot.press("v")
        assert list(app.tags.rows) == image_rows


async def test_P_cycles_patterns(worked_example: Path) -> None:
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        seen = [app.ws.strategy.pattern]
        for _ in range(3):
            await pilot.press("P")
            seen.append(app.ws.strategy.pattern)
        assert seen == ["keep-all", "absorb", "traits-only", "keep-all"]


async def test_t_sets_the_trigger(worked_example: Path) -> None:
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("t")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"kaede", "enter")
        assert app.ws.strategy.trigger == "kaede"
        assert app.caption.shown.startswith("kaede, 1girl, bangs")
        await pilot.press("t", "escape")  # cancel changes nothing
        assert app.ws.strategy.trigger == "kaede"


async def test_ctrl_s_writes_captions_and_profile(worked_example: Path) -> None:
    app = CuratorApp(worked_example)
    caption_file = worked_example / "10_kaede" / "window.txt"
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("t", *"kaede", "enter", "P")  # absorb with trigger
        await pilot.press("tab", "j", "1")  # bangs is a trait: absorbed
        assert app.ws.unsaved
        assert caption_file.read_text().startswith("1girl, bangs")  # nothing written yet
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert caption_file.read_text() == app.ws.caption_for(app.image)
        assert caption_file.read_text().startswith("kaede, 1girl, black hair")
        assert not app.ws.unsaved
        profile = library_path(worked_example.name)
        saved = load_profile(profile)
        assert saved.trigger == "kaede" and saved.pattern == "absorb"
        assert saved.bucket_of("bangs") == "trait"


async def test_undo_and_redo(worked_example: Path) -> None:
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("tab", "j", "1", "P")
        assert app.ws.strategy.pattern == "absorb"
        assert "bangs" not in app.caption.shown.split("   removed:")[0]
        await pilot.press("ctrl+z")
        assert app.ws.strategy.pattern == "keep-all"
        await pilot.press("ctrl+z")
        assert app.ws.strategy.bucket_of("bangs") == "unsorted"
        await pilot.press("ctrl+y", "ctrl+y")
        assert app.ws.strategy.bucket_of("bangs") == "trait"
        assert app.ws.strategy.pattern == "absorb"
        assert "bangs" not in app.caption.shown.split("   removed:")[0]


async def test_o_opens_a_profile_from_the_library(worked_example: Path) -> None:
    save_profile(
        Strategy(name="kaede", trigger="kaede", pattern="absorb", buckets={"bangs": "trait"}),
        library_path("kaede"),
    )
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("o")
        assert isinstance(app.screen, ProfilePicker)
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.ws.strategy.name == "kaede"
        assert app.caption.shown.startswith("kaede, 1girl, black hair")


async def test_ctrl_p_opens_the_palette_with_our_actions(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Put tag in trait" in titles and "Save" in titles and "Pattern" in titles
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"Pattern")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.ws.strategy.pattern == "absorb"  # sample has no state: profile-less start


async def test_help_keys(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        for key in ("question_mark", "f1"):
            await pilot.press(key)
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)


async def test_q_quits_and_asks_when_unsaved(worked_example: Path) -> None:
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("P", "q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.is_running and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("q", "y")
        await pilot.pause()
        assert app.return_value == 0
        assert not app.is_running
    # The edit was kept in the state: nothing lost by quitting.
    with Workspace.open(worked_example) as ws:
        assert ws.strategy.pattern == "absorb"


async def test_q_quits_at_once_when_saved(worked_example: Path) -> None:
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_user_keymap_remaps_a_key(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy, keymap={"next-image": "n"})
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        images = [e.image for e in app.ws.images]
        await pilot.press("n")
        assert app.image == images[1]


async def test_compact_layout_at_80x24(sample_copy: Path) -> None:
    app = CuratorApp(sample_copy)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        assert not app.preview.display or app.preview.size.width == 0
        for widget in (app.files, app.tags, app.caption):
            assert widget.size.width > 10 and widget.size.height >= 2
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.1)
        await pilot.pause()
        assert app.preview.size.width > 20


async def test_s_accepts_the_highlighted_suggestion(worked_example: Path) -> None:
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("tab", "j")  # bangs: a hair tag, suggested trait
        assert app.tags.suggestions["bangs"].bucket == "trait"
        assert app.tags.row_text("bangs", 40).plain.startswith(" t ")  # the ghost letter
        await pilot.press("s")
        assert app.ws.strategy.bucket_of("bangs") == "trait"
        assert app.tags.row_text("bangs", 40).plain.startswith(" T ")
        assert "bangs" not in app.tags.suggestions
        assert app.tags.current == "black hair"  # on to the next unsorted tag


async def test_S_accepts_every_suggestion_in_one_undo_step(worked_example: Path) -> None:
    app = CuratorApp(worked_example)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("S")
        s = app.ws.strategy
        # tagging.md sorts the worked example exactly so.
        assert sorted(s.tags_in("trait")) == TRAITS
        assert len(s.tags_in("context")) == 9
        await pilot.press("P")
        assert app.caption.shown.split("   removed:")[0] == ABSORB
        await pilot.press("ctrl+z", "ctrl+z")
        assert app.ws.strategy.buckets == {}


async def test_d_shows_diagnostics_and_jumps_to_an_image(sample_copy: Path) -> None:
    ref = sample_copy / "profiles" / "kaede.toml"
    app = CuratorApp(sample_copy, profile=load_profile(ref), profile_ref=str(ref))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, DiagnosticsScreen)
        for _ in range(200):
            await pilot.pause(0.05)
            if screen.findings is not None:
                break
        kinds = {f.kind for f in screen.findings}
        assert "uncaptioned" in kinds  # kaede_09 has no caption file
        uncaptioned = next(f for f in screen.findings if f.kind == "uncaptioned")
        assert uncaptioned.images == ("10_kaede/kaede_09.png",)
        options = screen.query_one("#findings")
        target = next(
            i
            for i in range(options.option_count)
            if options.get_option_at_index(i).id in screen._targets
            and screen._targets[options.get_option_at_index(i).id] == "10_kaede/kaede_09.png"
        )
        options.highlighted = target
        await pilot.press("enter")
        await pilot.pause()
        assert app.image == "10_kaede/kaede_09.png"
        assert not app.busy


async def test_ctrl_g_shows_the_prompt_guide_and_save_writes_it(sample_copy: Path) -> None:
    ref = sample_copy / "profiles" / "kaede.toml"
    app = CuratorApp(sample_copy, profile=load_profile(ref), profile_ref=str(ref))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+g")
        assert isinstance(app.screen, GuideScreen)
        assert "kaede" in app.screen.markdown
        await pilot.press("escape", "ctrl+s")
        await settle(pilot, app)
        guide = ref.with_name("kaede.guide.md")
        assert guide.read_text(encoding="utf-8") == app._guide_text()


async def test_o_with_another_caption_format_reopens_the_dataset(make_dataset) -> None:
    root = make_dataset({"a.png": None, "a.txt": "black_hair, smile\n"})
    save_profile(
        Strategy(name="raw", caption=CaptionFormat(underscores="keep")), library_path("raw")
    )
    app = CuratorApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        assert list(app.tags.rows) == ["black hair", "smile"]
        await pilot.press("o", "enter")
        await settle(pilot, app)
        assert app.is_running and not app.fatal
        assert app.ws.strategy.name == "raw"
        assert list(app.tags.rows) == ["black_hair", "smile"]


async def test_a_broken_image_shows_a_message_in_the_preview(make_dataset) -> None:
    root = make_dataset({"broken.png": b"\x89PNG\r\n\x1a\n-cut-", "broken.txt": "smile\n"})
    app = CuratorApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app, preview=True)
        screen = app.export_screenshot().replace("&#160;", " ")
        assert "broken.png" in screen and "cannot decode" in screen
        assert app.is_running
