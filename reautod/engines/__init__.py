"""Shared in-process inference engines (STT, LLM, TTS), their schedulers, and the model catalog.

The daemon builds one `EngineSet` at start-up (`await EngineSet.load(settings)`) and hands its
`stt` / `llm` / `tts` (the Protocols in `reautod.engines.base`) to every call.
"""

from __future__ import annotations

from reautod.engines.base import (
    AudioChunk,
    ChatMessage,
    EngineHealth,
    EngineState,
    EngineStats,
    LanguageModel,
    RequestTiming,
    SpeechToText,
    TextToSpeech,
    TokenChunk,
    Transcript,
)
from reautod.engines.registry import EngineSet

__all__ = [
    "AudioChunk",
    "ChatMessage",
    "EngineHealth",
    "EngineSet",
    "EngineState",
    "EngineStats",
    "LanguageModel",
    "RequestTiming",
    "SpeechToText",
    "TextToSpeech",
    "TokenChunk",
    "Transcript",
]
