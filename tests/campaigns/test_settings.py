"""Campaign settings: calling-window times are the lead's local wall-clock time."""

from __future__ import annotations

from datetime import time

import pytest
from pydantic import ValidationError

from reautod.campaigns.settings import CampaignSettings


def test_window_times_have_no_offset() -> None:
    settings = CampaignSettings.model_validate({"window_start": "08:30:00",
                                                "window_end": "19:00:00"})
    assert (settings.window_start, settings.window_end) == (time(8, 30), time(19))
    # an offset is refused as invalid input (it once raised TypeError comparing the two)
    with pytest.raises(ValidationError, match="without an offset"):
        CampaignSettings.model_validate({"window_end": "00:00:00Z"})
    with pytest.raises(ValidationError, match="after window_start"):
        CampaignSettings.model_validate({"window_start": "20:00:00", "window_end": "09:00:00"})
