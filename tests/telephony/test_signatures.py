"""X-Twilio-Signature checks for form POSTs and the media WebSocket upgrade."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from reautod.errors import ConfigError
from reautod.telephony.signatures import SignatureResult, TwilioSignatureValidator

TOKEN = "test-auth-token-0123456789abcdef"
BASE = "https://voice.example.com"
PARAMS = [("CallSid", "CA" + "1" * 32), ("CallStatus", "ringing"), ("SequenceNumber", "1")]


def sign(url: str, params: list[tuple[str, str]], token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, dict(params))


def test_valid_signature() -> None:
    seen: list[tuple[str, SignatureResult]] = []
    v = TwilioSignatureValidator(TOKEN, BASE + "/", on_result=lambda p, r: seen.append((p, r)))
    sig = sign(BASE + "/twilio/status", PARAMS)
    assert v.check_form("/twilio/status", "", PARAMS, sig) is SignatureResult.VALID
    assert v.stats.valid == 1
    assert seen == [("/twilio/status", SignatureResult.VALID)]


def test_missing_wrong_and_wrong_token() -> None:
    v = TwilioSignatureValidator(TOKEN, BASE)
    good = sign(BASE + "/twilio/status", PARAMS)
    assert v.check_form("/twilio/status", "", PARAMS, None) is SignatureResult.MISSING
    assert v.check_form("/twilio/status", "", PARAMS, "") is SignatureResult.MISSING
    assert v.check_form("/twilio/status", "", PARAMS, good[:-2] + "x=") is SignatureResult.INVALID
    other = sign(BASE + "/twilio/status", PARAMS, token="another-token")
    assert v.check_form("/twilio/status", "", PARAMS, other) is SignatureResult.INVALID
    tampered = [*PARAMS[:1], ("CallStatus", "completed"), PARAMS[2]]
    assert v.check_form("/twilio/status", "", tampered, good) is SignatureResult.INVALID
    assert (v.stats.missing, v.stats.invalid, v.stats.valid) == (2, 3, 0)


def test_wrong_url_is_rejected() -> None:
    v = TwilioSignatureValidator(TOKEN, BASE)
    # Signed for what a proxy might report instead of the public URL.
    internal = sign("http://127.0.0.1:8080/twilio/status", PARAMS)
    assert v.check_form("/twilio/status", "", PARAMS, internal) is SignatureResult.INVALID
    other_path = sign(BASE + "/twilio/amd", PARAMS)
    assert v.check_form("/twilio/status", "", PARAMS, other_path) is SignatureResult.INVALID


def test_query_string_is_part_of_the_signed_url() -> None:
    v = TwilioSignatureValidator(TOKEN, BASE)
    sig = sign(BASE + "/twilio/status?campaign=7", PARAMS)
    assert v.check_form("/twilio/status", "campaign=7", PARAMS, sig) is SignatureResult.VALID
    assert v.check_form("/twilio/status", "", PARAMS, sig) is SignatureResult.INVALID


def test_base_url_with_path_prefix() -> None:
    v = TwilioSignatureValidator(TOKEN, "https://example.com/reautod/")
    sig = sign("https://example.com/reautod/twilio/status", PARAMS)
    assert v.check_form("/twilio/status", "", PARAMS, sig) is SignatureResult.VALID
    assert v.websocket_url("/twilio/media") == "wss://example.com/reautod/twilio/media"


def test_replay_is_accepted_and_counted() -> None:
    v = TwilioSignatureValidator(TOKEN, BASE, replay_window=2)
    sig = sign(BASE + "/twilio/status", PARAMS)
    assert v.check_form("/twilio/status", "", PARAMS, sig) is SignatureResult.VALID
    assert v.check_form("/twilio/status", "", PARAMS, sig) is SignatureResult.REPLAYED
    assert v.stats.replayed == 1
    # The window is bounded: old signatures are forgotten.
    for n in range(3):
        params = [("CallSid", f"CA{n}"), ("CallStatus", "ringing")]
        v.check_form("/twilio/status", "", params, sign(BASE + "/twilio/status", params))
    assert v.check_form("/twilio/status", "", PARAMS, sig) is SignatureResult.VALID


def test_websocket_upgrade_signature() -> None:
    v = TwilioSignatureValidator(TOKEN, BASE)
    url = v.websocket_url("/twilio/media")
    assert url == "wss://voice.example.com/twilio/media"
    assert v.check_websocket(url, sign(url, [])) is SignatureResult.VALID
    assert v.check_websocket(url, sign(url, [])) is SignatureResult.REPLAYED
    assert v.check_websocket(url, None) is SignatureResult.MISSING
    assert v.check_websocket(url, sign("https://voice.example.com/twilio/media", [])) is (
        SignatureResult.INVALID
    )
    assert v.check_websocket(url, sign(url, [("call_id", "1")])) is SignatureResult.INVALID


@pytest.mark.parametrize("base", ["voice.example.com", "ftp://x", "https://x.example/?a=1", ""])
def test_bad_base_url_is_a_config_error(base: str) -> None:
    with pytest.raises(ConfigError, match="public_base_url"):
        TwilioSignatureValidator(TOKEN, base)


def test_empty_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="auth token"):
        TwilioSignatureValidator("", BASE)


def test_from_settings() -> None:
    from reautod.config import HttpSettings

    v = TwilioSignatureValidator.from_settings(HttpSettings(public_base_url=BASE), TOKEN)
    assert v.url_for("/twilio/status") == BASE + "/twilio/status"
    with pytest.raises(ConfigError, match="public_base_url"):
        TwilioSignatureValidator.from_settings(HttpSettings(), TOKEN)
    with pytest.raises(ConfigError, match="auth token"):
        TwilioSignatureValidator.from_settings(HttpSettings(public_base_url=BASE), None)
