"""The WD14 tagger: find a model, run it over a dataset's images, keep every score above a
floor (see `tui.core.scores`), and turn scores into tags by the profile's `[tagger]` table.

Importing this package costs nothing: numpy and onnxruntime (optional dependencies) are
imported only when a model is run."""

from tui.core.tagger.model import (
    LabelList,
    ModelFiles,
    TaggerError,
    find_model,
    hf_hub_cache,
    load_labels,
)
from tui.core.tagger.settings import (
    MODES,
    SOURCES,
    TaggerSettings,
    mcut_threshold,
    select_tags,
    tagger_settings_from_dict,
    tagger_settings_to_dict,
)

__all__ = [
    "MODES",
    "SOURCES",
    "LabelList",
    "ModelFiles",
    "TaggerError",
    "TaggerSettings",
    "find_model",
    "hf_hub_cache",
    "load_labels",
    "mcut_threshold",
    "select_tags",
    "tagger_settings_from_dict",
    "tagger_settings_to_dict",
]
