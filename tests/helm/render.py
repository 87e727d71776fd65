"""Renders the Helm chart with Helm v4's own library and validates every document.

Run by tests/deploy.rs (`the_chart_renders_with_real_helm_and_validates_against_kubernetes`):
    python3 tests/helm/render.py deploy/helm/finhook [VALUES.yaml ...]
For the chart's defaults and for each values file: `helm lint --strict` (nothing above info),
the values checked against values.schema.json, `helm template`, then every rendered manifest
validated with kubernetes-validate (strict: unknown fields are errors) for each Kubernetes
version finhook supports. Prints one JSON object: the rendered kinds and finhook configs per
values file, and every problem found; exits 1 when there is a problem.
"""

import json
import sys

import helm_python
import kubernetes_validate
import yaml

KUBERNETES_VERSIONS = ["1.29.0", "1.30.0", "1.31.0", "1.32.0", "1.33.0"]
# Custom resources of the Prometheus operator: kubernetes-validate has no schema for them, so
# they are checked for the fields the operator requires.
CUSTOM_RESOURCES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ["endpoints", "selector"],
    ("monitoring.coreos.com/v1", "PrometheusRule"): ["groups"],
}


def check(chart_path, values_path):
    problems = []
    values = {}
    if values_path:
        with open(values_path) as values_file:
            values = yaml.safe_load(values_file) or {}
    what = values_path or "default values"
    lint = helm_python.lint(chart_path, values, strict=True)
    for message in lint["messages"]:
        if message["severity"] >= 2:
            problems.append(f"{what}: helm lint: {message['path']}: {message['error']}")
    problems += [f"{what}: helm lint: {error}" for error in lint["errors"]]
    kinds = []
    configs = []
    pods = []
    with helm_python.Chart.load(chart_path) as chart:
        chart.validate_schema(values)
        rendered = chart.render(values, name="finhook", namespace="finhook", is_install=True)
    for path, text in sorted(rendered.items()):
        if not path.endswith(".yaml"):
            continue
        for document in yaml.safe_load_all(text):
            if not document:
                continue
            kind = document.get("kind")
            kinds.append(kind)
            if kind == "ConfigMap" and "finhook.toml" in document.get("data", {}):
                configs.append(document["data"]["finhook.toml"])
            if kind == "Deployment":
                pods.append(document["spec"]["template"]["spec"])
            required = CUSTOM_RESOURCES.get((document.get("apiVersion"), kind))
            if required is not None:
                missing = [key for key in required if key not in document.get("spec", {})]
                if missing or "name" not in document.get("metadata", {}):
                    problems.append(f"{what}: {path}: {kind} lacks {missing or 'metadata.name'}")
                continue
            for version in KUBERNETES_VERSIONS:
                try:
                    kubernetes_validate.validate(document, version, strict=True)
                except Exception as error:  # ValidationError, SchemaNotFoundError
                    problems.append(f"{what}: {path}: {kind} on {version}: {type(error).__name__}: {error}")
    return {"values": what, "kinds": kinds, "configs": configs, "pods": pods}, problems


def main():
    chart_path, values_paths = sys.argv[1], sys.argv[2:]
    reports, problems = [], []
    for values_path in [None] + values_paths:
        report, found = check(chart_path, values_path)
        reports.append(report)
        problems += found
    print(json.dumps({"reports": reports, "problems": problems}))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
