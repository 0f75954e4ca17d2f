"""`yummi-admin` against the running stack: direct import, the upload path with indexing, a URL source,
listing, activation, and clear refusals."""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from yummi_catalog.entrypoints.admin_cli import main

from .conftest import ADMIN_EMAIL, Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ADMIN_SUB = "admin_cli_e2e"


def generate(path: Path, count: int, seed: int) -> Path:
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/generate_sample_catalog.py"),
            "--count",
            str(count),
            "--seed",
            str(seed),
            "--out",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[list[str]]:
    """The CLI's connection options; whatever version was live before the module is live again after it."""
    headers = stack.auth(ADMIN_SUB, ADMIN_EMAIL)
    live_before = [d for d in datasets(stack, headers) if d["status"] == "active"]
    yield ["--gateway", stack.url, "--token", headers["Authorization"].removeprefix("Bearer ")]
    if live_before:
        response = stack.client.post(f"/v1/admin/datasets/{live_before[0]['id']}/activate", headers=headers)
        assert response.status_code == 200, response.text


def datasets(stack: Stack, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = stack.client.get("/v1/admin/datasets", params={"limit": 100}, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def run(admin: list[str], *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([*admin, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_small_file_is_imported_directly_and_goes_live(
    stack: Stack, admin: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = generate(tmp_path / "small.json", 120, seed=101)
    code, out, err = run(admin, "import", str(path), capsys=capsys)
    assert code == 0, err
    assert "imported 120 items as v" in out and "(live)" in out
    assert stack.client.get("/v1/catalog", params={"limit": 1}).json()["dataset_version"] in out

    code, out, _ = run(admin, "import", str(path), capsys=capsys)
    assert code == 0 and "already imported as v" in out and "(live)" in out


def test_the_upload_path_creates_uploads_completes_follows_indexing_and_activates(
    stack: Stack, admin: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = generate(tmp_path / "large.json", 3_000, seed=102)
    code, out, err = run(
        admin,
        "import",
        str(path),
        "--via-upload",
        "--version",
        "cli-weekly",
        "--notes",
        "from the CLI",
        capsys=capsys,
    )
    assert code == 0, err
    assert "upload" in err and "indexing" in err and "3,000/3,000 items" in err
    assert "dataset cli-weekly: 3000 items, ready; activate it to make it live" in out
    dataset_id = out.strip().rsplit(" ", 1)[-1]

    code, out, _ = run(admin, "datasets", capsys=capsys)
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("cli-weekly"))
    assert "ready" in line and "3,000" in line and dataset_id in line

    code, out, _ = run(admin, "activate", dataset_id, capsys=capsys)
    assert code == 0 and "dataset cli-weekly is live (3000 items)" in out
    page = stack.client.get("/v1/catalog", params={"limit": 5, "q": "milk"}).json()
    assert page["dataset_version"] == "cli-weekly"


def test_a_url_is_downloaded_then_uploaded_and_activated_in_one_go(
    stack: Stack, admin: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate(tmp_path / "remote.json", 500, seed=103)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/remote.json"
        code, out, err = run(admin, "import", url, "--via-upload", "--activate", capsys=capsys)
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0, err
    assert "download" in err and "items, live:" in out
    assert stack.client.get("/v1/catalog", params={"limit": 1}).json()["items"]


def test_refusals_are_explained_with_an_exit_code(
    admin: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = orjson.loads(generate(tmp_path / "bad.json", 30, seed=104).read_bytes())["items"]
    items[7]["price"] = "free"
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps(items))

    code, _, err = run(admin, "import", str(bad), capsys=capsys)
    assert code == 1 and "HTTP 422" in err and "items[7]" in err
    code, _, err = run(admin, "import", str(bad), "--via-upload", capsys=capsys)
    assert code == 1 and "failed: 1 of 30 items are invalid; first: index 7" in err
    code, _, err = run(admin, "import", str(tmp_path / "missing.json"), capsys=capsys)
    assert code == 2 and "is not a file" in err
    code, _, err = run(admin, "activate", "00000000-0000-4000-8000-000000000000", capsys=capsys)
    assert code == 1 and "HTTP 404" in err
    assert main(["--gateway", admin[1], "--token", "", "datasets"]) == 2


def test_the_console_script_is_installed(admin: list[str]) -> None:
    script = Path(sys.executable).parent / "yummi-admin"
    result = subprocess.run([str(script), *admin, "datasets", "--limit", "3"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("VERSION")
