"""The STT's fitted encoder window (reautod.engines.stt): which window a turn gets, and what
counts as a looped transcript that is decoded again over Whisper's full 30 s."""

from __future__ import annotations

import pytest

from reautod.engines.stt import encoder_window_s, looks_looped


@pytest.mark.parametrize(("audio_s", "window"), [
    (0.4, 8), (3.0, 8), (6.9, 8), (7.2, 9), (12.0, 13), (27.9, 29),
    (28.5, None), (45.0, None)])  # None: Whisper's own 30 s
def test_a_turn_gets_a_window_of_its_own_length_at_least_8_s(audio_s: float,
                                                            window: int | None) -> None:
    assert encoder_window_s(audio_s) == window


@pytest.mark.parametrize("text", [
    "Yes. Yes. Yes. Yes.",
    "Who is this? Who is this?",  # a sentence twice in a row
    "Go ahead go ahead go ahead",  # a run of words three times
    "Testing 123 testing 123 testing 123 testing 123 testing 123 testing 123",  # compresses
])
def test_repetition_is_a_loop(text: str) -> None:
    assert looks_looped(text, n_tokens=12, cap=40)


@pytest.mark.parametrize("text", [
    "Hi, yes, I have a minute.",
    "Testing 123 testing 123",  # said twice, as the caller did
    "Okay, thanks. Bye.",
    "We, the people of the United States, in order to form a more perfect union, establish "
    "justice, ensure domestic tranquility, provide for the common defense.",
    "",
])
def test_ordinary_speech_is_not(text: str) -> None:
    assert not looks_looped(text, n_tokens=12, cap=40)


def test_reaching_the_token_cap_is_a_loop() -> None:
    assert looks_looped("an ordinary sentence", n_tokens=40, cap=40)
