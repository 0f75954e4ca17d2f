"""The reference runner's pure parts: heartbeat pacing, log lines, retailer adapters (its loop runs e2e)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from yummi_orders.runner.cli import main
from yummi_orders.runner.journal import RunnerLog
from yummi_orders.runner.retailers import DryRunRetailer, load_retailer
from yummi_orders.runner.runner import DEFAULT_LEASE_SECONDS, MIN_HEARTBEAT_SECONDS, heartbeat_interval


def iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def test_heartbeats_come_every_third_of_the_lease_left() -> None:
    assert heartbeat_interval(iso_in(300)) == pytest.approx(100, abs=1)
    assert heartbeat_interval(iso_in(30)) == pytest.approx(10, abs=0.5)


def test_a_short_lease_is_heartbeaten_often_but_not_in_a_busy_loop() -> None:
    assert heartbeat_interval(iso_in(0.3)) == MIN_HEARTBEAT_SECONDS


@pytest.mark.parametrize("expires", [None, "", "not a time", "2000-01-01T00:00:00Z", iso_in(10 * 24 * 3600)])
def test_a_missing_past_or_absurd_expiry_falls_back_to_the_default_lease(expires: str | None) -> None:
    assert heartbeat_interval(expires) == DEFAULT_LEASE_SECONDS / 3


def test_an_explicit_heartbeat_interval_wins() -> None:
    assert heartbeat_interval(iso_in(300), override=5) == 5


def test_each_log_line_is_utc_time_order_id_step_and_one_line_details(tmp_path: Path) -> None:
    log = RunnerLog(tmp_path / "nested" / "runner.txt")
    log.step("5b0c…", "placed", retailer_reference="DRY-5B0C")
    log.step("5b0c…", "placement_failed", notes="out of stock:\nmilk and\teggs")
    lines = (tmp_path / "nested" / "runner.txt").read_text().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 5b0c… placed retailer_reference=DRY-5B0C", lines[0]
    )
    assert lines[1].endswith("placement_failed notes='out of stock: milk and eggs'")


def test_the_dry_run_retailer_answers_a_reference_made_from_the_order_id() -> None:
    placement = asyncio.run(DryRunRetailer().place({"id": "0f8e3a2c-1111-4222-8333-444455556666"}))
    assert placement.retailer_reference == "DRY-0F8E3A2C"


def test_a_retailer_adapter_is_loaded_by_module_and_class_name() -> None:
    assert isinstance(load_retailer("dry-run"), DryRunRetailer)
    assert isinstance(load_retailer("yummi_orders.runner.retailers:DryRunRetailer"), DryRunRetailer)
    with pytest.raises(ValueError):
        load_retailer("no-colon-here")


def test_the_cli_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YUMMI_RUNNER_TOKEN", raising=False)
    assert main(["--once"]) == 2
    assert main(["--once", "--token", "t", "--retailer-adapter", "nowhere.at.all:Retailer"]) == 2
