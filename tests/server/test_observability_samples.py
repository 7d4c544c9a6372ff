"""The Prometheus alert rules (conf/prometheus-mpmserver.rules.yml) and the
Grafana panels of docs/observability.md ask for metrics and labels a real
server's /metrics serves (issue 26): a renamed metric or label fails here,
not in someone's dashboard."""

from __future__ import annotations

import re

import pytest

from tests.support import metrics
from tests.support.client import http_get
from tests.support.server import ROOT

RULES = ROOT / "conf" / "prometheus-mpmserver.rules.yml"
PANELS = ROOT / "docs" / "observability.md"
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def asked(text: str) -> list[tuple[str, dict[str, str]]]:
    """Each mpmserver_ metric a text names, with the labels a selector gives it."""
    out = []
    for m in re.finditer(r"\b(mpmserver_[a-z_]+)(?:\{([^}]*)\})?", text):
        labels = dict(re.findall(r'(\w+)="([^"$]*)"', m.group(2) or ""))
        out.append((m.group(1), labels))
    return out


def family_of(name: str, families: dict) -> str | None:
    if name in families:
        return name
    for suffix in HISTOGRAM_SERIES:
        base = name.removesuffix(suffix)
        if base != name and families.get(base, {}).get("type") == "histogram":
            return base
    return None


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tests.support.server import Server

    s = Server("-w", "1", "--threads", "2", "--metrics-path", "/metrics",
               tmp_path=tmp_path_factory.mktemp("metrics")).start()
    try:
        assert http_get(s.port, "/hello")[0] == 200
        status, _, body = http_get(s.port, "/metrics")
        assert status == 200
        yield metrics.parse(body.decode())
    finally:
        s.stop()


@pytest.mark.parametrize("source", [RULES, PANELS], ids=lambda p: p.name)
def test_every_metric_asked_for_is_served(source, served):
    wanted = asked(source.read_text())
    assert len({name for name, _ in wanted}) >= 4
    for name, labels in wanted:
        family = family_of(name, served)
        assert family, f"{source.name} asks for {name}, which /metrics does not serve"
        served_labels = {k for key in served[family]["samples"] for k, _ in key if k}
        for label, value in labels.items():
            if label != "instance":  # Prometheus adds it
                assert label in served_labels, f"{source.name}: {name} has no label {label}"
                if family == "mpmserver_recycles_total":
                    assert (label, value) in {kv for key in served[family]["samples"] for kv in key}, value


def test_the_rules_file_is_prometheus_rules():
    yaml = pytest.importorskip("yaml")
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 4
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"} and rule["alert"] and rule["expr"]
        assert rule["labels"]["severity"] in ("warning", "critical")
