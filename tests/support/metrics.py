"""The Prometheus text exposition parsed as a scraper would, asserting the
format's rules (test_metrics.py, test_metrics_lifecycle.py)."""

from __future__ import annotations

import re

_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? '
                     r'(\S+)\Z')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[str, dict]:
    """Families by name: {"type", "help", "samples": {labels tuple: value}}; asserts the format's rules."""
    assert text.endswith("\n")
    families: dict[str, dict] = {}
    for line in text.splitlines():
        assert line, "no blank lines"
        if line.startswith("# HELP "):
            name, help_text = line[7:].split(" ", 1)
            assert name not in families, f"{name} described twice"
            families[name] = {"help": help_text, "type": None, "samples": {}}
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert families[name]["type"] is None and not families[name]["samples"]
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped")
            families[name]["type"] = kind
        else:
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, labels, value = m.groups()
            family = families[_family_of(name, families)]  # every sample follows its family's HELP and TYPE
            assert family["type"] is not None
            key = tuple(_LABEL.findall(labels or ""))
            if name != _family_of(name, families):  # a histogram's: keep the suffix in the key
                key = (("", name.rpartition("_")[2]),) + key
            assert key not in family["samples"], f"duplicate series {line!r}"
            family["samples"][key] = float(value)
    for name, family in families.items():
        assert name.startswith("mpmserver_")
        assert (family["type"] == "counter") == name.endswith("_total"), name
        if family["type"] == "histogram":
            check_histogram(family)
    return families


def _family_of(sample: str, families: dict[str, dict]) -> str:
    if sample in families:
        return sample
    base, _, suffix = sample.rpartition("_")
    assert suffix in ("bucket", "sum", "count") and families[base]["type"] == "histogram", sample
    return base


def histograms(family: dict) -> dict[tuple, dict]:
    """A histogram family's series by their labels: {"buckets": {le: cumulative count}, "sum", "count"}."""
    series: dict[tuple, dict] = {}
    for key, v in family["samples"].items():
        (_, suffix), labels = key[0], key[1:]
        le = dict(labels).get("le")
        labels = tuple(kv for kv in labels if kv[0] != "le")
        one = series.setdefault(labels, {"buckets": {}})
        if suffix == "bucket":
            one["buckets"][le] = v
        else:
            one[suffix] = v
    return series


def check_histogram(family: dict) -> None:
    """Prometheus' rules: buckets cumulative in increasing le, ending in +Inf == _count."""
    for labels, one in histograms(family).items():
        les = list(one["buckets"])
        assert les[-1] == "+Inf" and [float(le) for le in les[:-1]] == sorted(float(le) for le in les[:-1])
        counts = list(one["buckets"].values())
        assert counts == sorted(counts), (labels, counts)
        assert one["buckets"]["+Inf"] == one["count"] and "sum" in one, labels


def value(families, name, **labels):
    return families[name]["samples"][tuple(labels.items())]
