"""The STT confidence formula documented in reautod.engines.stt."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reautod.engines.stt import SegmentScore, confidence_from


def test_no_segments_is_zero() -> None:
    assert confidence_from([]) == 0.0


def test_certain_speech_is_near_one() -> None:
    assert confidence_from([SegmentScore(-0.01, 0.0, 10)]) == pytest.approx(math.exp(-0.01))


def test_no_speech_probability_scales_it_down() -> None:
    sure = confidence_from([SegmentScore(-0.1, 0.0, 5)])
    doubtful = confidence_from([SegmentScore(-0.1, 0.5, 5)])
    assert doubtful == pytest.approx(sure * 0.5)
    assert confidence_from([SegmentScore(-0.1, 1.0, 5)]) == 0.0


def test_segments_weighted_by_token_count() -> None:
    long_good = SegmentScore(-0.1, 0.0, 30)
    short_bad = SegmentScore(-3.0, 0.0, 1)
    expected = math.exp((30 * -0.1 + 1 * -3.0) / 31)
    assert confidence_from([long_good, short_bad]) == pytest.approx(expected)


def test_nan_scores_give_zero() -> None:
    assert confidence_from([SegmentScore(float("nan"), 0.1, 3)]) == 0.0


@given(st.lists(st.builds(
    SegmentScore,
    avg_logprob=st.floats(min_value=-1e6, max_value=10, allow_nan=False),
    no_speech_prob=st.floats(min_value=-1, max_value=2, allow_nan=False),
    n_tokens=st.integers(min_value=0, max_value=500),
), max_size=8))
def test_always_within_zero_and_one(segments: list[SegmentScore]) -> None:
    assert 0.0 <= confidence_from(segments) <= 1.0
