"""A user's provider key as we accept it: provider, label and key shape, and the hint we may show."""

from __future__ import annotations

from dataclasses import dataclass

from yummi_common.errors import InvalidArgument

PROVIDERS = ("openai",)
MAX_LABEL_CHARS = 128
MIN_KEY_CHARS = 8
MAX_KEY_CHARS = 512
MAX_CREDENTIALS_PER_USER = 10


@dataclass(frozen=True)
class NewCredential:
    provider: str
    label: str
    api_key: str


def validate_new_credential(*, provider: str, label: str, api_key: str) -> NewCredential:
    """The credential to store, or InvalidArgument naming each bad field (the key is never echoed)."""
    errors: list[dict[str, str]] = []
    provider = (provider or "openai").strip().lower()
    if provider not in PROVIDERS:
        errors.append({"field": "provider", "message": f"must be one of {', '.join(PROVIDERS)}"})
    label = label.strip()
    if not 1 <= len(label) <= MAX_LABEL_CHARS:
        errors.append({"field": "label", "message": f"1 to {MAX_LABEL_CHARS} characters"})
    elif not label.isprintable():
        errors.append({"field": "label", "message": "must be printable text"})
    api_key = api_key.strip()
    if not MIN_KEY_CHARS <= len(api_key) <= MAX_KEY_CHARS:
        errors.append({"field": "api_key", "message": f"{MIN_KEY_CHARS} to {MAX_KEY_CHARS} characters"})
    elif not all(33 <= ord(ch) < 127 for ch in api_key):
        errors.append({"field": "api_key", "message": "must be printable ASCII without spaces"})
    if errors:
        raise InvalidArgument("the credential is invalid", errors=errors)
    return NewCredential(provider=provider, label=label, api_key=api_key)


def key_hint(api_key: str) -> str:
    """The last four characters (and the `sk-` prefix when present): enough to recognise, not to use."""
    prefix = "sk-" if api_key.startswith("sk-") else ""
    return f"{prefix}…{api_key[-4:]}"
