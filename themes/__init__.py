"""Theme definitions (`*.toml`) and the app's stylesheet (`curator.tcss`), shipped as data."""
