"""Write the gateway's OpenAPI document to openapi.json (--check: fail when the committed one has drifted)."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "openapi.json"
MAX_DIFF_LINES = 80


def build_document() -> dict[str, Any]:
    """The document the gateway serves on /openapi.json, built from the app without starting anything."""
    from yummi_common.settings import Settings
    from yummi_gateway.app import create_app

    # Pinned, so the environment of whoever runs this cannot change the document.
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="dev",
        thin_slice_enabled=True,
        YUMMI_VERSION=Settings.model_fields["version"].default,
    )
    return create_app(settings).openapi()


def render(document: dict[str, Any]) -> str:
    """Deterministic text: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when openapi.json differs from the code")
    parser.add_argument("--out", type=Path, default=TARGET, help="where to write (default: openapi.json)")
    args = parser.parse_args()
    fresh = render(build_document())
    if not args.check:
        args.out.write_text(fresh, encoding="utf-8")
        print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
        return 0
    committed = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
    if committed == fresh:
        print(f"{args.out.name} is up to date")
        return 0
    diff = list(
        difflib.unified_diff(
            committed.splitlines(),
            fresh.splitlines(),
            f"{args.out.name} (committed)",
            "(from the code)",
            lineterm="",
        )
    )
    changed = sum(1 for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---")))
    print("\n".join(diff[:MAX_DIFF_LINES]))
    if len(diff) > MAX_DIFF_LINES:
        print(f"... {len(diff) - MAX_DIFF_LINES} more diff lines")
    hint = f"{args.out.name} is stale ({changed} changed lines): run `make openapi` and commit it"
    print(hint, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
