"""The alert rules and the Grafana dashboard are well-formed and name only metrics the code defines; with
promtool on PATH (Debian package `prometheus`) the rules, their unit tests and every dashboard query are
checked by it as well."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[4]
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
DASHBOARD = ROOT / "deploy/grafana/yummi.json"
METRIC = re.compile(r"\byummi_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def _defined_metrics() -> set[str]:
    """Every `yummi_*` metric name spelled out in the packages' source."""
    names: set[str] = set()
    for source in [*ROOT.glob("libs/*/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]:
        names.update(re.findall(r"[\"'](yummi_[a-z0-9_]+)[\"']", source.read_text()))
    return names


def _base_name(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_every_alert_has_a_severity_a_summary_and_a_description() -> None:
    rules = _rules()
    assert len(rules) >= 10
    for rule in rules:
        assert rule["alert"].startswith("Yummi"), rule
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    names = {rule["alert"] for rule in rules}
    assert {
        "YummiHigh5xxRate",
        "YummiHighP99Latency",
        "YummiOutboxLagHigh",
        "YummiOutboxBacklogGrowing",
        "YummiDeadLetters",
        "YummiOrderQueueStale",
        "YummiItnFailuresSpike",
        "YummiServiceDown",
    } <= names


def test_alerts_and_dashboard_use_only_metrics_the_code_defines() -> None:
    defined = _defined_metrics()
    used = {
        _base_name(name)
        for expr in [*(rule["expr"] for rule in _rules()), *_dashboard_exprs()]
        for name in METRIC.findall(expr)
    }
    assert used, "no yummi_ metric found in the alerts or the dashboard"
    assert not sorted(used - defined), f"metrics nobody exports: {sorted(used - defined)}"


def test_the_dashboard_is_importable_json_with_unique_panel_ids() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard["title"] == "Yummi"
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "service"}
    assert all(panel["targets"] for panel in dashboard["panels"] if panel["type"] != "row")


def test_promtool_accepts_the_rules_their_tests_and_the_dashboard_queries(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:  # not on every machine: the structural checks above still ran
        return
    folder = ALERTS.parent
    for args in (
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
        ["check", "config", "prometheus-compose.yml"],
    ):
        run = subprocess.run([promtool, *args], cwd=folder, capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stdout + run.stderr
    # Each dashboard query as a recording rule, with Grafana's variables filled in.
    queries = [
        expr.replace("$__rate_interval", "5m").replace("$service", ".*") for expr in _dashboard_exprs()
    ]
    rules = {
        "groups": [
            {"name": "dashboard", "rules": [{"record": f"q{i}", "expr": q} for i, q in enumerate(queries)]}
        ]
    }
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    run = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "dashboard.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
