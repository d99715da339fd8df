"""Where the suite finds real speech: `../shared/data/speech` beside the repository (read in
place, never copied into the project), or `$REAUTOD_TEST_SPEECH_DIR`."""

from __future__ import annotations

import os
from pathlib import Path

SPEECH_DIR = Path(
    os.environ.get("REAUTOD_TEST_SPEECH_DIR")
    or Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "speech"
)
