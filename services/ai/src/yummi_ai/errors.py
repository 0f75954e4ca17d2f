"""The ai context's one error beyond `yummi_common.errors`: an upstream (OpenAI, the catalog) that failed.

It is answered with gRPC UNKNOWN, which the gateway maps to 502 Bad Gateway. Not UNAVAILABLE on purpose:
the shared channels transparently retry UNAVAILABLE, which would run the metered provider calls (and their
retries) again, multiplying cost and latency. UNAVAILABLE stays for failures before anything was spent.
TODO(libs/common): promote this to `yummi_common.errors.UpstreamFailed` if another context needs it.
"""

from __future__ import annotations

from yummi_common.errors import YummiError


class UpstreamFailed(YummiError):
    """The AI provider (or the catalog, mid-suggestion) failed after our retries; the caller may try later."""

    code = "UNKNOWN"
