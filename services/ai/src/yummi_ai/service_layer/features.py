"""Which assistant features are switched on (`AI_FEATURES`)."""

from __future__ import annotations

from yummi_ai.config import AiConfig
from yummi_common.errors import NotFound


def require_feature(config: AiConfig, feature: str) -> None:
    """NotFound ("feature disabled") unless `feature` is listed in AI_FEATURES."""
    if feature not in config.features:
        raise NotFound(f"the AI feature '{feature}' is disabled")
