"""What the ai service reads from the one settings class, as a plain value the use cases and tests share."""

from __future__ import annotations

from dataclasses import dataclass

from yummi_common.settings import Settings

FEATURE_COMPLETE = "complete"
FEATURE_BASKET_SUGGESTIONS = "basket_suggestions"


@dataclass(frozen=True)
class AiConfig:
    """The ai settings (DESIGN §3 plus the AI_* additions) in the shape the use cases need."""

    models: tuple[str, ...]
    default_model: str
    max_tokens_cap: int
    daily_token_limit: int
    features: frozenset[str]
    total_deadline_seconds: float
    attempt_timeout_seconds: float
    max_attempts: int
    verify_keys_on_create: bool
    server_api_key: str | None
    base_url: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> AiConfig:
        return cls(
            models=tuple(settings.ai_models),
            default_model=settings.ai_default_model,
            max_tokens_cap=settings.ai_max_tokens_cap,
            daily_token_limit=settings.ai_daily_token_limit,
            features=settings.ai_feature_set,
            total_deadline_seconds=settings.ai_total_deadline_seconds,
            attempt_timeout_seconds=settings.ai_attempt_timeout_seconds,
            max_attempts=settings.ai_max_attempts,
            verify_keys_on_create=settings.ai_verify_keys_on_create,
            server_api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
        )
