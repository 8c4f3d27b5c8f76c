"""`python -m tui` does what the `lora-curator` command does."""

import sys

from tui.cli import main

sys.exit(main())
