"""`yummi-admin`: the catalog admin's command line; it talks to the gateway over HTTP with a bearer token.

    yummi-admin import FILE_OR_URL [--activate] [--via-upload] [--name N] [--version V] [--notes T]
                                   [--skip-invalid]
    yummi-admin datasets [--limit N]
    yummi-admin activate DATASET_ID

Options before the command: `--gateway URL` (env YUMMI_GATEWAY_URL, default http://localhost:8000) and
`--token TOKEN` (env YUMMI_ADMIN_TOKEN): an admin's session token.

`import` sends a file of at most 25 MB to POST /v1/admin/catalog/import, which makes it live at once. A
larger file (or any file with --via-upload) becomes a dataset version: POST /v1/admin/datasets, PUT the bytes
to the upload target it names (a presigned object-storage URL or the gateway's own route), POST .../complete
with the SHA-256, then follow indexing until the version is ready or failed; --activate then makes it live.
A URL source is first downloaded (streamed) to a temporary file. Progress goes to stderr, results to stdout;
the exit code is 0 on success, 1 when the gateway refused or indexing failed, 2 for bad arguments or an
unreadable source.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urljoin, urlsplit

import httpx

DEFAULT_GATEWAY = "http://localhost:8000"
# The gateway's body limit for POST /v1/admin/catalog/import; larger files take the upload path.
DIRECT_IMPORT_MAX_BYTES = 25 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
SETTLED = frozenset({"ready", "failed", "active", "retired"})
MAX_RETRIES = 5


class AdminError(Exception):
    """The gateway refused a request (the message says why) or a step could not be done."""


@dataclass
class Progress:
    """One progress line on stderr, redrawn in place on a terminal and every few seconds otherwise."""

    label: str
    total: int
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    unit: str = "MB"
    done: int = 0
    _started: float = field(default_factory=time.monotonic)
    _drawn: float = 0.0

    def advance(self, amount: int) -> None:
        self.update(self.done + amount)

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        now = time.monotonic()
        interactive = self.stream.isatty()
        if now - self._drawn >= (0.1 if interactive else 2.0):
            self._draw(end="\r" if interactive else "\n")
            self._drawn = now

    def finish(self) -> None:
        self._draw(end="\n")

    def _draw(self, *, end: str) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        if self.unit == "MB":
            amount = f"{self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB ({self.done / 1e6 / elapsed:.1f} MB/s)"
        else:
            amount = f"{self.done:,}/{self.total:,} {self.unit}"
        percent = f"{100 * self.done / self.total:3.0f}%" if self.total else "   "
        print(f"{self.label:<10} {percent} {amount}  {elapsed:.1f}s", end=end, file=self.stream, flush=True)


class AdminClient:
    """The admin endpoints of the gateway, each raising AdminError with the problem's detail on refusal."""

    def __init__(self, gateway: str, token: str, *, timeout: float = 30.0) -> None:
        self.gateway = gateway.rstrip("/")
        self._token = token
        self._http = httpx.Client(
            base_url=self.gateway,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def import_catalog(self, content: bytes, *, name: str = "", skip_invalid: bool = False) -> dict[str, Any]:
        """POST /v1/admin/catalog/import: the file becomes the live version (or was imported before)."""
        params: dict[str, Any] = {"skip_invalid": "true"} if skip_invalid else {}
        if name:
            params["name"] = name
        return self._json(
            "POST",
            "/v1/admin/catalog/import",
            content=content,
            params=params,
            headers={"Content-Type": "application/json"},
            timeout=300.0,
        )

    def create_dataset(self, *, name: str, version: str = "", notes: str = "") -> dict[str, Any]:
        body = {
            "name": name,
            **({"version": version} if version else {}),
            **({"notes": notes} if notes else {}),
        }
        return self._json("POST", "/v1/admin/datasets", json=body)

    def upload(self, target: dict[str, Any], path: Path, progress: Progress | None = None) -> str:
        """PUT the file to the dataset's upload target, streamed; return its SHA-256 (hashed on the way)."""
        url = urljoin(self.gateway + "/", target["url"])
        headers = {str(k): str(v) for k, v in (target.get("headers") or {}).items()}
        headers["Content-Length"] = str(path.stat().st_size)  # object stores refuse chunked uploads
        if _origin(url) == _origin(self.gateway):
            headers["Authorization"] = f"Bearer {self._token}"  # only the gateway gets the token, never S3
        digest = hashlib.sha256()

        def body() -> Iterator[bytes]:
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK_BYTES):
                    digest.update(chunk)
                    if progress is not None:
                        progress.advance(len(chunk))
                    yield chunk

        response = httpx.request(
            target.get("method", "PUT"), url, content=body(), headers=headers, timeout=httpx.Timeout(60.0)
        )
        if response.status_code >= 300:
            raise AdminError(f"upload refused: {_problem(response)}")
        return digest.hexdigest()

    def complete(self, dataset_id: str, checksum: str) -> dict[str, Any]:
        # Long timeout: with object storage the catalog reads the whole file back to check it.
        return self._json(
            "POST",
            f"/v1/admin/datasets/{dataset_id}/complete",
            json={"checksum_sha256": checksum},
            timeout=600.0,
        )

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/admin/datasets/{dataset_id}")

    def datasets(self, limit: int = 20) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._json("GET", "/v1/admin/datasets", params={"limit": limit})[
            "items"
        ]
        return items

    def activate(self, dataset_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/admin/datasets/{dataset_id}/activate")

    def wait_until_settled(
        self,
        dataset_id: str,
        *,
        timeout: float = 3600.0,
        poll_interval: float | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll the dataset until indexing has ended; by default quickly at first, then once a second."""
        started = time.monotonic()
        while True:
            dataset = self.dataset(dataset_id)
            if on_progress is not None:
                on_progress(dataset)
            if dataset["status"] in SETTLED:
                return dataset
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                raise AdminError(f"dataset {dataset_id} is still {dataset['status']} after {timeout:.0f}s")
            time.sleep(poll_interval if poll_interval is not None else min(1.0, 0.25 + elapsed / 10))

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON object answered; 429s are retried after their Retry-After, other refusals raise."""
        for _ in range(MAX_RETRIES):
            response = self._http.request(method, path, **kwargs)
            if response.status_code != 429:
                break
            time.sleep(min(float(response.headers.get("Retry-After") or 1), 30.0))
        if response.status_code >= 300:
            raise AdminError(_problem(response))
        body = response.json() if response.content else {}
        return body if isinstance(body, dict) else {"items": body}


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _problem(response: httpx.Response) -> str:
    """A problem response as one readable message (its detail and the first validation errors)."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}"
    message = f"HTTP {response.status_code}: {body.get('detail') or body.get('title') or 'refused'}"
    errors = body.get("errors") or []
    lines = [
        f"  {e.get('field', '')}: {e.get('message', e)}" if isinstance(e, dict) else f"  {e}" for e in errors
    ]
    more = [f"  ... and {len(errors) - 10} more"] if len(errors) > 10 else []
    return "\n".join([message, *lines[:10], *more])


@contextmanager
def local_copy(source: str, *, timeout: float = 60.0) -> Iterator[Path]:
    """The source as a local file: a path as it is, a URL downloaded (streamed) to a temporary file."""
    if not source.lower().startswith(("http://", "https://")):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{source} is not a file")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="yummi-admin-") as folder:
        path = Path(folder) / "catalog.json"
        try:
            with httpx.stream("GET", source, follow_redirects=True, timeout=timeout) as response:
                if response.status_code != 200:
                    raise AdminError(f"downloading {source} failed: HTTP {response.status_code}")
                progress = Progress("download", int(response.headers.get("Content-Length") or 0))
                with path.open("wb") as handle:
                    for chunk in response.iter_bytes(CHUNK_BYTES):
                        handle.write(chunk)
                        progress.advance(len(chunk))
                progress.finish()
        except httpx.HTTPError as exc:
            raise AdminError(f"downloading {source} failed: {exc}") from None
        yield path


def import_command(client: AdminClient, args: argparse.Namespace) -> int:
    with local_copy(args.source) as path:
        size = path.stat().st_size
        name = args.name or Path(urlsplit(args.source).path).name or "catalog.json"
        if size <= DIRECT_IMPORT_MAX_BYTES and not args.via_upload:
            if args.version or args.notes:
                raise AdminError("--version and --notes need the upload path: add --via-upload")
            result = client.import_catalog(path.read_bytes(), name=name, skip_invalid=args.skip_invalid)
            if result.get("already_imported"):
                state = "live" if result.get("active") else "not live; activate it to use it"
                print(f"already imported as {result['version']} ({state}): {result['dataset_id']}")
            else:
                skipped = f", skipped {len(result['skipped'])} invalid items" if result.get("skipped") else ""
                print(
                    f"imported {result['item_count']} items as {result['version']} (live){skipped}: "
                    f"{result['dataset_id']}"
                )
            return 0
        if args.skip_invalid:
            raise AdminError("--skip-invalid works only for direct imports (files of at most 25 MB)")
        return _upload_dataset(client, path, name=name, args=args)


def _upload_dataset(client: AdminClient, path: Path, *, name: str, args: argparse.Namespace) -> int:
    created = client.create_dataset(name=name[:200], version=args.version or "", notes=args.notes or "")
    dataset_id = created["id"]
    print(f"created dataset {created['version']} ({dataset_id})", file=sys.stderr)
    upload = Progress("upload", path.stat().st_size)
    checksum = client.upload(created["upload"], path, upload)
    upload.finish()
    client.complete(dataset_id, checksum)
    indexing = Progress("indexing", 0, unit="items")

    def show(dataset: dict[str, Any]) -> None:
        progress = dataset.get("progress") or {}
        indexing.update(int(progress.get("done") or 0), int(progress.get("total") or 0))

    dataset = client.wait_until_settled(dataset_id, timeout=args.wait_timeout, on_progress=show)
    indexing.finish()
    if dataset["status"] == "failed":
        print(
            f"dataset {dataset['version']} failed: {dataset.get('error') or 'no reason given'}",
            file=sys.stderr,
        )
        return 1
    if args.activate:
        dataset = client.activate(dataset_id)
    state = "live" if dataset["status"] == "active" else f"{dataset['status']}; activate it to make it live"
    print(f"dataset {dataset['version']}: {dataset['item_count']} items, {state}: {dataset_id}")
    return 0


def datasets_command(client: AdminClient, args: argparse.Namespace) -> int:
    rows = client.datasets(limit=args.limit)
    print(f"{'VERSION':<20} {'STATUS':<10} {'ITEMS':>9} {'MB':>8}  {'CREATED':<20} ID")
    for d in rows:
        status = d["status"]
        if status == "indexing":
            status = f"indexing {d['progress']['done']:,}"
        created = (d.get("created_at") or "")[:19].replace("T", " ")
        print(
            f"{d['version']:<20} {status:<10} {d['item_count']:>9,} {d['size_bytes'] / 1e6:>8.1f}  "
            f"{created:<20} {d['id']}"
        )
    return 0


def activate_command(client: AdminClient, args: argparse.Namespace) -> int:
    dataset = client.activate(args.dataset_id)
    print(f"dataset {dataset['version']} is live ({dataset['item_count']} items): {dataset['id']}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="yummi-admin", description="Catalog administration through the gateway."
    )
    top.add_argument(
        "--gateway",
        default=os.environ.get("YUMMI_GATEWAY_URL", DEFAULT_GATEWAY),
        help=f"the gateway's base URL (env YUMMI_GATEWAY_URL, default {DEFAULT_GATEWAY})",
    )
    top.add_argument(
        "--token",
        default=os.environ.get("YUMMI_ADMIN_TOKEN"),
        help="an admin's bearer token (env YUMMI_ADMIN_TOKEN)",
    )
    commands = top.add_subparsers(dest="command", required=True)

    importing = commands.add_parser("import", help="import a catalog.json file or URL")
    importing.add_argument("source", help="a catalog.json path or an http(s) URL")
    importing.add_argument("--activate", action="store_true", help="make an uploaded dataset live once ready")
    importing.add_argument(
        "--via-upload", action="store_true", help="use the dataset upload path even for a small file"
    )
    importing.add_argument("--name", help="the dataset's name (default: the file name)")
    importing.add_argument("--version", help="the version name (upload path; default: the next vNNNN)")
    importing.add_argument("--notes", help="notes kept with the version (upload path)")
    importing.add_argument(
        "--skip-invalid", action="store_true", help="import the valid items and skip bad ones (direct import)"
    )
    importing.add_argument(
        "--wait-timeout",
        type=float,
        default=3600.0,
        help="give up following indexing after this many seconds",
    )
    importing.set_defaults(run=import_command)

    listing = commands.add_parser("datasets", help="list dataset versions, newest first")
    listing.add_argument("--limit", type=int, default=20, help="how many (1..100, default 20)")
    listing.set_defaults(run=datasets_command)

    activating = commands.add_parser("activate", help="make a dataset version live (also a rollback)")
    activating.add_argument("dataset_id")
    activating.set_defaults(run=activate_command)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.token:
        print("yummi-admin: an admin token is needed (--token or YUMMI_ADMIN_TOKEN)", file=sys.stderr)
        return 2
    try:
        with AdminClient(args.gateway, args.token) as client:
            result: int = args.run(client, args)
            return result
    except FileNotFoundError as exc:
        print(f"yummi-admin: {exc}", file=sys.stderr)
        return 2
    except AdminError as exc:
        print(f"yummi-admin: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"yummi-admin: cannot reach {args.gateway}: {exc}", file=sys.stderr)
        return 1


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
