"""Properties of the rendered objects, for every values profile (see conftest.PROFILES)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import yaml

from moaa.common.kafka import ALL_TOPICS as TOPICS
from moaa.common.kafka import SEVEN_DAYS_MS
from moaa.localstack import versions

from .conftest import CHART, Helm

Obj = dict[str, Any]
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"}
SECRET_ENV = re.compile(r"PASSWORD|SECRET|TOKEN|_URI$|JAAS")


def _pod_spec(obj: Obj) -> Obj:
    return obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]


def _containers(rendered: list[Obj]) -> list[tuple[str, Obj, Obj, bool]]:
    """(where, container, pod securityContext, is_init) of every container we render,
    Spark drivers and executors included (their pod is built by Spark from these fields)."""
    out = []
    for obj in rendered:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in POD_KINDS:
            spec = _pod_spec(obj)
            for c in spec.get("initContainers", []):
                out.append((f"{name}/{c['name']}", c, spec.get("securityContext", {}), True))
            for c in spec["containers"]:
                out.append((f"{name}/{c['name']}", c, spec.get("securityContext", {}), False))
        elif obj["kind"] == "SparkApplication":
            for role in ("driver", "executor"):
                spec = obj["spec"][role]
                tmpl = spec.get("template", {}).get("spec", {}).get("containers", [{}])[0]
                container = {**spec, **{k: v for k, v in tmpl.items() if k != "name"}}
                container["image"] = obj["spec"]["image"]
                out.append(
                    (
                        f"{name}/{role}",
                        container,
                        spec.get("podSecurityContext", {}),
                        role == "executor",
                    )
                )
    return out


def _by_kind(rendered: list[Obj], kind: str) -> list[Obj]:
    return [o for o in rendered if o["kind"] == kind]


def test_every_container_has_resources(rendered: list[Obj]) -> None:
    missing = []
    for where, c, _, _ in _containers(rendered):
        if "cores" in c:  # a Spark role: Spark turns cores/memory into requests and limits
            if not c.get("memory") or not c.get("cores"):
                missing.append(where)
            continue
        res = c.get("resources", {})
        if not all(
            res.get(k, {}).get(r) for k in ("requests", "limits") for r in ("cpu", "memory")
        ):
            missing.append(where)
    assert not missing, missing


def test_every_container_has_probes(rendered: list[Obj]) -> None:
    """Liveness and readiness on every container; init containers cannot have probes, and
    Spark executors serve no port (the driver replaces a lost executor)."""
    missing = [
        where
        for where, c, _, is_init in _containers(rendered)
        if not is_init and not (c.get("livenessProbe") and c.get("readinessProbe"))
    ]
    assert not missing, missing


def test_restricted_pod_security(rendered: list[Obj]) -> None:
    problems = []
    for where, c, pod_ctx, _ in _containers(rendered):
        ctx = c.get("securityContext", {})
        if not (ctx.get("runAsNonRoot") or pod_ctx.get("runAsNonRoot")):
            problems.append(f"{where}: may run as root")
        if ctx.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: writable root filesystem")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: privilege escalation allowed")
        if ctx.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{where}: capabilities not dropped")
        seccomp = ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}
        if seccomp.get("type") != "RuntimeDefault":
            problems.append(f"{where}: no RuntimeDefault seccomp profile")
        if ctx.get("privileged"):
            problems.append(f"{where}: privileged")
    for obj in rendered:
        if obj["kind"] in POD_KINDS and _pod_spec(obj).get("hostNetwork"):
            problems.append(f"{obj['metadata']['name']}: hostNetwork")
    assert not problems, "\n".join(problems)


def test_every_image_is_pinned(rendered: list[Obj]) -> None:
    bad = []
    for where, c, _, _ in _containers(rendered):
        image = c["image"]
        if "@sha256:" in image:
            continue
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        if not tag or tag == "latest":
            bad.append(f"{where}: {image}")
    assert not bad, bad


def test_our_images_carry_the_chart_version(rendered: list[Obj]) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    for where, c, _, _ in _containers(rendered):
        if "@sha256:" not in c["image"]:
            assert c["image"].endswith(f":{app_version}"), where


def test_no_secret_value_inline(rendered: list[Obj]) -> None:
    """Credentials reach containers only through secretKeyRef, never as literal values."""
    inline = []
    for where, c, _, _ in _containers(rendered):
        for env in c.get("env", []):
            if SECRET_ENV.search(env["name"]) and "value" in env:
                inline.append(f"{where}: {env['name']}")
    assert not inline, inline
    # Nothing secret in the values files either.
    for path in [CHART / "values.yaml", *CHART.glob("values-*.yaml"), *CHART.glob("ci/*.yaml")]:
        text = path.read_text().lower()
        assert not re.search(r"^\s*(password|secret|token)\s*:", text, re.M), path


def test_generated_passwords_come_from_nowhere_in_the_chart(helm: Helm, profile: str) -> None:
    """The Secrets the chart renders hold random passwords (two renders differ)."""

    def passwords() -> dict[str, str]:
        return {
            s["metadata"]["name"]: base64.b64decode(s["data"]["password"]).decode()
            for s in helm.template(profile)
            if s["kind"] == "Secret"
        }

    first, second = passwords(), passwords()
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] != second[name], name
        assert len(first[name]) >= 24, name


def test_every_topic_keeps_seven_days(rendered: list[Obj]) -> None:
    topics = _by_kind(rendered, "KafkaTopic")
    assert {t["spec"]["topicName"] for t in topics} == TOPICS
    for t in topics:
        assert int(t["spec"]["config"]["retention.ms"]) == SEVEN_DAYS_MS, t["metadata"]["name"]
    # Components that could create a missing topic do it with the same retention.
    for where, c, _, _ in _containers(rendered):
        for env in c.get("env", []):
            if env["name"] == "MOAA_TOPIC_RETENTION_MS":
                assert int(env["value"]) == SEVEN_DAYS_MS, where


def test_feeder_and_producer_share_the_socket_volume(rendered: list[Obj]) -> None:
    (ingest,) = [
        o
        for o in _by_kind(rendered, "Deployment")
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == "ingest"
    ]
    spec = _pod_spec(ingest)
    containers = {c["name"]: c for c in spec["containers"]}
    assert set(containers) == {"feeder", "producer"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    sockets = set()
    for c in containers.values():
        path = Path(next(e["value"] for e in c["env"] if e["name"] == "MOAA_SOCKET_PATH"))
        (mount,) = [m for m in c["volumeMounts"] if Path(m["mountPath"]) == path.parent]
        assert "emptyDir" in volumes[mount["name"]]
        sockets.add((str(path), mount["name"]))
    assert len(sockets) == 1, sockets
    assert ingest["spec"]["replicas"] == 1
    assert ingest["spec"]["strategy"]["type"] == "Recreate"


def test_spark_applications(rendered: list[Obj]) -> None:
    apps = {
        a["metadata"]["labels"]["app.kubernetes.io/component"]: a
        for a in _by_kind(rendered, "SparkApplication")
    }
    assert set(apps) == {"stats", "forecast"}
    claims = {p["metadata"]["name"] for p in _by_kind(rendered, "PersistentVolumeClaim")}
    for job, app in apps.items():
        spec = app["spec"]
        assert spec["sparkVersion"] == versions.SPARK_VERSION
        assert spec["restartPolicy"]["type"] == "Always"
        assert spec["arguments"] == [job]
        assert spec["mainApplicationFile"].startswith("local://")
        assert "deps" not in spec, "nothing may be resolved at submit"
        (ckpt,) = [v for v in spec["volumes"] if v["name"] == "checkpoints"]
        assert ckpt["persistentVolumeClaim"]["claimName"] in claims
        env = {e["name"]: e for e in spec["driver"]["env"]}
        assert env["MOAA_CHECKPOINT_DIR"]["value"] == "/checkpoints"
        for role in ("driver", "executor"):
            mounts = {m["mountPath"] for m in spec[role]["volumeMounts"]}
            assert "/checkpoints" in mounts, (job, role)


def test_pyspark_pin_matches_the_spark_image() -> None:
    pyproject = (CHART.parents[1] / "apps" / "streaming" / "pyproject.toml").read_text()
    assert f'"pyspark=={versions.SPARK_VERSION}"' in pyproject
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["spark"]["version"] == versions.SPARK_VERSION


def test_insert_runs_as_a_deployment(rendered: list[Obj]) -> None:
    (insert,) = [
        o
        for o in _by_kind(rendered, "Deployment")
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == "insert"
    ]
    assert _pod_spec(insert)["containers"][0]["command"] == ["moaa", "insert"]
    env = {e["name"]: e.get("value") for e in _pod_spec(insert)["containers"][0]["env"]}
    # Real MongoDB: bulks far above the app's FerretDB-sized default (90).
    assert int(env["MOAA_INSERT_BULK_OPS"]) >= 500


def _selected(selector: Obj, labels: dict[str, str]) -> bool:
    for k, v in selector.get("matchLabels", {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions", []):
        present = expr["key"] in labels
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
        if expr["operator"] == "Exists" and not present:
            return False
    return True


def _workload_labels(rendered: list[Obj]) -> dict[str, dict[str, str]]:
    """Pod labels of each of our long-running components (Spark drivers included)."""
    out = {}
    for obj in rendered:
        if obj["kind"] in {"Deployment", "StatefulSet"}:
            labels = obj["spec"]["template"]["metadata"]["labels"]
            out[labels["app.kubernetes.io/component"]] = labels
        elif obj["kind"] == "SparkApplication":
            labels = obj["spec"]["driver"]["labels"]
            out[labels["app.kubernetes.io/component"] + "-driver"] = labels
    return out


def test_every_component_is_scraped_with_the_release_label(rendered: list[Obj]) -> None:
    monitors = _by_kind(rendered, "PodMonitor")
    for m in monitors + _by_kind(rendered, "ServiceMonitor") + _by_kind(rendered, "PrometheusRule"):
        assert m["metadata"]["labels"].get("release"), m["metadata"]["name"]
    unscraped = [
        name
        for name, labels in _workload_labels(rendered).items()
        if not any(_selected(m["spec"]["selector"], labels) for m in monitors)
    ]
    assert not unscraped, unscraped
    kinds = {m["metadata"]["labels"]["app.kubernetes.io/component"] for m in monitors}
    assert "kafka" in kinds
    assert [
        s["spec"]["selector"]["matchLabels"]["app"] for s in _by_kind(rendered, "ServiceMonitor")
    ] == ["moaa-mongo-svc"]


def test_grafana_dashboards_are_labelled_configmaps(rendered: list[Obj]) -> None:
    maps = [
        o
        for o in _by_kind(rendered, "ConfigMap")
        if o["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    titles = set()
    for cm in maps:
        (text,) = cm["data"].values()
        titles.add(json.loads(text)["uid"])
    assert titles == {"moaa-overview", "moaa-spark", "moaa-kafka", "moaa-mongodb"}


def test_alert_rules_cover_the_issue(rendered: list[Obj]) -> None:
    (rule,) = _by_kind(rendered, "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {
        "MoaaPipelineStalled",
        "MoaaDeadLettersGrowing",
        "MoaaConsumerLagGrowing",
        "MoaaForecastSkillDropping",
    } <= alerts


def test_network_policies_deny_by_default(rendered: list[Obj]) -> None:
    policies = _by_kind(rendered, "NetworkPolicy")
    deny = [
        p
        for p in policies
        if set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and "ingress" not in p["spec"]
        and "egress" not in p["spec"]
    ]
    assert len(deny) == 1
    for name, labels in _workload_labels(rendered).items():
        if name == "mongodb":
            continue
        assert _selected(deny[0]["spec"]["podSelector"], labels), name
        allowed = [
            p for p in policies if p is not deny[0] and _selected(p["spec"]["podSelector"], labels)
        ]
        assert allowed, f"{name} has no allow policy"


def test_kafka_users_are_least_privilege(rendered: list[Obj]) -> None:
    users = {
        u["metadata"]["labels"]["app.kubernetes.io/component"]: u
        for u in _by_kind(rendered, "KafkaUser")
    }
    assert set(users) == {"producer", "stats", "forecast", "insert", "dashboard"}
    for app, user in users.items():
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        for acl in user["spec"]["authorization"]["acls"]:
            assert "All" not in acl["operations"], app
            assert acl["resource"]["type"] != "cluster", app
            assert acl["resource"].get("name") not in ("*", ""), app
    writes = {
        app: {
            a["resource"]["name"]
            for a in u["spec"]["authorization"]["acls"]
            if "Write" in a["operations"]
        }
        for app, u in users.items()
    }
    assert writes["producer"] == {"weather.observations", "weather.observations.dlq"}
    assert writes["insert"] == writes["dashboard"] == set()
    # The one listener is TLS with SCRAM-SHA-512.
    (kafka,) = _by_kind(rendered, "Kafka")
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True
    assert listener["authentication"]["type"] == "scram-sha-512"


def test_mongodb_users(rendered: list[Obj]) -> None:
    (mdb,) = _by_kind(rendered, "MongoDBCommunity")
    roles = {u["name"]: [r["name"] for r in u["roles"]] for u in mdb["spec"]["users"]}
    assert roles == {"moaa-insert": ["readWrite"], "moaa-dashboard": ["read"]}


def test_dashboards_are_generated() -> None:
    """files/dashboards/*.json are the output of charts/tools/gen_dashboards.py."""
    import runpy

    ns = runpy.run_path(str(CHART.parent / "tools" / "gen_dashboards.py"), run_name="gen")
    files = {p.name: p.read_text() for p in (CHART / "files" / "dashboards").glob("*.json")}
    assert files == ns["render"]()
