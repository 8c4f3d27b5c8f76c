"""Every key of the curator in one table: the Footer, the help screen, the command palette
and the user's keymap (`[keymap]` in config.toml, id = "keys") all read it."""

from __future__ import annotations

from textual.binding import Binding

from tui.core.buckets import ALL_BUCKETS

# Bucket keys, from the core's bucket table: binding id → bucket name. The cursor then moves
# to the next unsorted tag.
BUCKET_KEYS = {f"bucket-{b.name}": b.name for b in ALL_BUCKETS}

APP_BINDINGS: list[Binding] = [
    *(
        Binding(b.key, f"bucket('{b.name}')", b.name, id=f"bucket-{b.name}", show=b.in_footer)
        for b in ALL_BUCKETS
    ),
    Binding("s", "accept_suggestion", "accept suggestion", id="accept-suggestion"),
    Binding(
        "S",
        "accept_all_suggestions",
        "accept all suggestions",
        id="accept-all-suggestions",
        show=False,
    ),
    Binding(
        "space",
        "toggle_image_tag",
        "remove/restore on image (adds a candidate)",
        id="toggle-tag",
        show=False,
    ),
    Binding("a", "add_tag", "add tag", id="add-tag", show=False),
    Binding("right_square_bracket", "next_image", "next image", id="next-image", priority=True),
    Binding(
        "left_square_bracket",
        "previous_image",
        "previous image",
        id="previous-image",
        priority=True,
        show=False,
    ),
    Binding("f", "full_screen", "full-screen image", id="full-screen", show=False),
    Binding("v", "toggle_view", "image/dataset tags", id="toggle-view"),
    Binding("P", "cycle_pattern", "pattern", id="cycle-pattern"),
    Binding("t", "edit_trigger", "trigger", id="edit-trigger"),
    Binding("N", "new_concept", "new concept from folder", id="new-concept", show=False),
    Binding("C", "toggle_bucket_target", "keys: profile/concept", id="bucket-target", show=False),
    Binding("c", "cycle_concept_scope", "files of a concept", id="concept-scope", show=False),
    # Tagger thresholds (stored scores, no model run): a step of 0.05 down or up.
    Binding(
        "minus",
        "threshold('general', -0.05)",
        "lower the general threshold",
        id="general-threshold-down",
        show=False,
    ),
    Binding(
        "equals_sign",
        "threshold('general', 0.05)",
        "raise the general threshold",
        id="general-threshold-up",
        show=False,
    ),
    Binding(
        "underscore",
        "threshold('character', -0.05)",
        "lower the character threshold",
        id="character-threshold-down",
        show=False,
    ),
    Binding(
        "plus",
        "threshold('character', 0.05)",
        "raise the character threshold",
        id="character-threshold-up",
        show=False,
    ),
    Binding("ctrl+t", "tag_images", "tag images not yet tagged", id="tag-images", show=False),
    Binding("slash", "filter", "filter (files: a query)", id="filter", show=False),
    Binding("b", "batch_add", "add a tag to every shown image", id="batch-add", show=False),
    Binding(
        "x", "batch_remove", "remove a tag from every shown image", id="batch-remove", show=False
    ),
    Binding("r", "rename_tag", "rename tag everywhere (alias)", id="rename-tag", show=False),
    Binding("m", "merge_tag", "merge tag into another", id="merge-tag", show=False),
    Binding("ctrl+s", "save", "save", id="save", priority=True),
    Binding("ctrl+z", "undo", "undo", id="undo", show=False, priority=True),
    Binding("ctrl+y", "redo", "redo", id="redo", show=False, priority=True),
    Binding("o", "open_profile", "open profile", id="open-profile", show=False),
    Binding("A", "adopt_disk", "adopt disk version", id="adopt-disk"),
    Binding("O", "keep_ours", "overwrite disk version", id="keep-ours"),
    Binding("d", "diagnostics", "diagnostics", id="diagnostics", show=False),
    Binding("ctrl+g", "guide", "prompt guide", id="guide", show=False),
    Binding("question_mark,f1", "help", "help", id="help"),
    Binding("q", "quit_app", "quit", id="quit"),
]

LIST_BINDINGS: list[Binding] = [
    Binding("j,down", "cursor_down", "down", id="cursor-down", show=False),
    Binding("k,up", "cursor_up", "up", id="cursor-up", show=False),
    Binding("g,home", "cursor_first", "first", id="cursor-first", show=False),
    Binding("G,end", "cursor_last", "last", id="cursor-last", show=False),
    Binding("pagedown", "page_down", "page down", show=False),
    Binding("pageup", "page_up", "page up", show=False),
]

# What the help screen says of keys that Textual itself provides.
BUILTIN_KEYS = [
    ("tab / shift+tab", "next / previous pane"),
    ("escape", "clear the filter, close a dialog"),
    ("ctrl+p", "command palette: every action by name"),
]
