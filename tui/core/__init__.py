"""The engine: datasets, captions, strategies, profiles, state. Never imports Textual."""
