"""Parses node_exporter textfile content on stdin with prometheus_client's parser and prints
the metric families as JSON: {name: {"type", "help", "samples": [{"name", "labels", "value"}]}}.
Used by tests/real_host_prometheus.rs; needs prometheus-client on PYTHONPATH
(`tests/testhost/testhost.sh promparser`). A parse error is an exception: exit 1."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    if family.name in families:
        raise SystemExit(f"family {family.name} appears twice")
    families[family.name] = {
        "type": family.type,
        "help": family.documentation,
        "samples": [
            {"name": s.name, "labels": dict(s.labels), "value": s.value}
            for s in family.samples
        ],
    }
json.dump(families, sys.stdout, indent=1, sort_keys=True)
print()
