"""The log redaction processor keeps secrets, tokens and prompts out of every log line."""

from __future__ import annotations

from yummi_common.logging import REDACTED, redact_secrets


def test_secret_keys_are_redacted_at_any_depth() -> None:
    event = redact_secrets(
        None,
        "info",
        {
            "event": "calling payfast",
            "passphrase": "jt7NOE43FZPn",
            "fields": {"merchant_key": "46f0cd694581a", "amount": "10.00", "signature": "abc"},
            "messages": [{"prompt": "my secret dinner plan"}],
            "api_key": "sk-live-123",
        },
    )
    assert event["passphrase"] == REDACTED
    assert event["fields"] == {"merchant_key": REDACTED, "amount": "10.00", "signature": REDACTED}
    assert event["messages"] == [{"prompt": REDACTED}]
    assert event["api_key"] == REDACTED
    assert event["event"] == "calling payfast"


def test_bearer_tokens_inside_strings_are_redacted() -> None:
    event = redact_secrets(None, "info", {"event": "x", "header": "Bearer eyJhbGciOi.abc.def"})
    assert "eyJ" not in event["header"]
