"""The Prometheus config, its alerts and the Grafana dashboard agree with the code: they
parse, compose mounts them where Prometheus reads them, the scrape targets are the
ports the services serve on, and every metric an expression names is one fillpipe
exports."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.metrics import WORKER_REGISTRY, LedgerCollector
from tests.infra.examples import INFRA, ROOT, load_json
from webhook_receiver.metrics import RECEIVER_REGISTRY

pytestmark = pytest.mark.timeout(30)

PROMETHEUS = INFRA / "prometheus"
DASHBOARD = INFRA / "grafana" / "fillpipe-dashboard.json"
METRIC_NAME = re.compile(r"\bfillpipe_[a-z_]+\b")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())


@pytest.fixture(scope="module")
def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@pytest.fixture
def exported(ledger) -> set[str]:
    """Every sample name fillpipe exports: the workers', the receiver's and the ledger's."""
    ledger_registry = CollectorRegistry()
    ledger_registry.register(LedgerCollector(ledger.redis, ledger.keys, ledger.pools))
    text = b"".join(
        generate_latest(registry)
        for registry in (WORKER_REGISTRY, RECEIVER_REGISTRY, ledger_registry)
    ).decode()
    # A labelled family has no samples until a label value is used: its sample names
    # by its type.
    suffixes = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total",)}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ())}
    return names


def test_compose_runs_prometheus_with_the_config_and_the_alerts(compose, config):
    service = compose["prometheus"]
    assert service["image"].startswith("prom/prometheus:")
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"] == "./infra/prometheus/prometheus.yml"
    assert mounts["/etc/prometheus/alerts.yml"] == "./infra/prometheus/alerts.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in service["command"]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert service["ports"] == ["127.0.0.1:9090:9090"]  # never published beyond the host


def test_prometheus_scrapes_the_receiver_and_every_worker_where_they_serve(compose, config):
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    receiver = jobs["fillpipe-receiver"]
    assert receiver["metrics_path"] == "/metrics"
    [targets] = [group["targets"] for group in receiver["static_configs"]]
    assert targets == ["receiver:8080"]
    assert "--port" in compose["receiver"]["command"]
    assert compose["receiver"]["command"][compose["receiver"]["command"].index("--port") + 1] == (
        "8080"
    )
    [workers] = jobs["fillpipe-worker"]["dns_sd_configs"]
    assert workers["names"] == ["worker"]
    env = compose["worker"]["environment"]
    assert str(workers["port"]) == env["FILLPIPE_METRICS_PORT"]
    assert env["FILLPIPE_METRICS_HOST"] == "0.0.0.0"  # reachable from the prometheus container
    assert str(workers["port"]) in compose["worker"]["expose"]


def test_the_alerts_cover_callbacks_idle_slots_and_paused_accounts(alerts):
    names = {rule["alert"] for rule in alerts}
    assert {
        "FillpipeCallbacksRejected",
        "FillpipeSlotsIdleWhileJobsWait",
        "FillpipeAccountPaused",
    } <= names
    for rule in alerts:
        assert rule["expr"].strip() and rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
    idle = next(rule for rule in alerts if rule["alert"] == "FillpipeSlotsIdleWhileJobsWait")
    assert idle["for"] == "5m"


@pytest.mark.integration
def test_alert_expressions_name_only_exported_metrics(alerts, exported):
    for rule in alerts:
        named = set(METRIC_NAME.findall(rule["expr"]))
        assert named <= exported, f"{rule['alert']}: {named - exported}"


def dashboard_exprs() -> list[str]:
    dashboard = load_json(DASHBOARD)
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_dashboard_shows_what_operators_look_at():
    dashboard = load_json(DASHBOARD)
    assert dashboard["uid"] == "fillpipe"
    text = " ".join(dashboard_exprs())
    for metric in (
        "fillpipe_jobs",
        "fillpipe_account_slots_in_use",
        "fillpipe_account_slots",
        "fillpipe_submit_seconds_bucket",
        "fillpipe_collect_seconds_bucket",
        "fillpipe_callbacks_rejected_total",
        "fillpipe_provider_errors_total",
        "fillpipe_credits_spent_total",
    ):
        assert re.search(rf"\b{metric}\b", text), metric
    assert "histogram_quantile(0.99" in text and "histogram_quantile(0.5" in text


@pytest.mark.integration
def test_dashboard_expressions_name_only_exported_metrics(exported):
    for expr in dashboard_exprs():
        named = set(METRIC_NAME.findall(expr))
        assert named and named <= exported, f"{expr}: {named - exported}"
