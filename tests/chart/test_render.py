"""The chart renders, lints and validates offline for every values profile.

Core objects are validated against the Kubernetes JSON schemas of a current release shipped
by `kubernetes-validate` (strict: unknown fields fail); custom resources against the CRD
schemas kept in tests/chart/crds (copied from the operators' releases, see PROVENANCE.md).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .conftest import CHART, KUBE_VERSION, Helm

CRDS = Path(__file__).parent / "crds"
#: The dependencies and the versions references.md pins (chart version = what we test against).
DEPENDENCIES = {
    "strimzi-kafka-operator": ("1.2.0", "oci://quay.io/strimzi-helm"),
    "mongodb-kubernetes": ("1.10.0", "https://mongodb.github.io/helm-charts"),
    "spark-operator": ("2.5.2", "https://kubeflow.github.io/spark-operator"),
    "kube-prometheus-stack": ("88.5.3", "https://prometheus-community.github.io/helm-charts"),
}


def _crd_schema(obj: dict[str, Any]) -> dict[str, Any] | None:
    group, _, version = obj["apiVersion"].rpartition("/")
    path = CRDS / group / f"{obj['kind'].lower()}_{version}.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_chart_declares_pinned_dependencies_behind_conditions() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    deps = {d["name"]: d for d in meta["dependencies"]}
    assert set(deps) == set(DEPENDENCIES)
    for name, (version, repo) in DEPENDENCIES.items():
        assert deps[name]["version"] == version, name
        assert deps[name]["repository"] == repo, name
        assert deps[name]["condition"] == f"{name}.enabled", name
    # Third-party charts are fetched on the user's machine, never committed.
    assert not (CHART / "charts").exists() or not any((CHART / "charts").glob("*/Chart.yaml"))


def test_lint(helm: Helm, profile: str) -> None:
    proc = helm.lint(profile)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_object_matches_its_schema(
    rendered: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Offline for real: any attempt to open a connection fails the test.
    def _no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("schema validation tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    errors = []
    for obj in rendered:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        schema = _crd_schema(obj)
        try:
            if schema is not None:
                jsonschema.Draft7Validator(schema).validate(obj)
            else:
                kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{name}: no schema for {obj['apiVersion']} {obj['kind']}")
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
            errors.append(f"{name}: {str(exc).splitlines()[0]}")
    assert not errors, "\n".join(errors)


def test_crd_schemas_reject_typos() -> None:
    """The CRD schemas are strict, so the validation above means something."""
    topic = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "t"},
        "spec": {"partitions": 1, "replicas": 1, "confg": {}},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(_crd_schema(topic)).validate(topic)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("images.feeder.iamge=x", "additional properties 'iamge' not allowed"),
        ("images.spark.tag=latest", "/images/spark/tag"),
        ("kafka.topics.retentionMs=86400000", "/kafka/topics/retentionMs"),
        ("stats.drivr.cores=2", "additional properties 'drivr' not allowed"),
    ],
)
def test_schema_rejects_unknown_keys_and_bad_values(helm: Helm, setting: str, message: str) -> None:
    proc = helm.run(
        "template", "moaa", str(helm.chart), "--kube-version", KUBE_VERSION, "--set", setting,
        check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert message in proc.stderr


def test_schema_is_generated(tmp_path: Path) -> None:
    """values.schema.json is the output of charts/tools/gen_schema.py."""
    import runpy

    ns = runpy.run_path(str(CHART.parent / "tools" / "gen_schema.py"), run_name="gen")
    assert json.loads((CHART / "values.schema.json").read_text()) == ns["schema"]


def test_every_value_is_documented() -> None:
    """Each key of values.yaml has a `##` comment above it or sits in a documented block."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if indent:  # nested keys are covered by their parent's comment
            continue
        if not lines[i - 1].lstrip().startswith("#"):
            undocumented.append(stripped)
    assert not undocumented, undocumented
