"""Every rendered object, server-side applied to a real kube-apiserver (tests/chart/apiserver.py).

The pinned operators' CRDs are installed first (upstream/), so custom resources meet their
real structural schemas, CEL rules and defaulting; the namespace enforces the restricted Pod
Security Standard, and any warning the server answers (a pod template that would violate it,
a deprecated field) counts as a failure. Nothing runs: there is no kubelet, controller or
operator, only the API server's admission.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from .apiserver import Applied, Cluster, helm_phases, object_ref, restricted_namespace
from .conftest import NAMESPACE, PROFILES, UPSTREAM, Helm

WEBHOOK_WAIT = "moaa-spark-webhook-wait"


def _rejections(results: list[Applied]) -> list[str]:
    return [
        f"{r.ref}: HTTP {r.status} {r.message}".strip() if not r.ok else f"{r.ref}: {r.warnings}"
        for r in results
        if not r.ok or r.warnings
    ]


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_object_is_accepted(kube_cluster: Cluster, helm: Helm, profile: str) -> None:
    """The whole render, hooks and `helm test` Pod included, in Helm's order: 0 rejections."""
    namespace = f"moaa-{profile}"
    restricted_namespace(kube_cluster, namespace)
    phases = helm_phases(helm.template(profile, "--namespace", namespace))
    assert not phases.pre_install
    results = [kube_cluster.apply(obj, namespace) for phase in phases for obj in phase]
    assert not _rejections(results), "\n".join(_rejections(results))
    kinds = {r.ref.split("/")[0] for r in results}
    assert {"Kafka", "KafkaUser", "MongoDBCommunity", "Deployment", "Pod"} <= kinds
    if profile != "production":
        assert {"SparkApplication", "Job"} <= kinds


@pytest.mark.parametrize("cidr", ["", "172.18.0.2/32"])
def test_api_server_egress(kube_cluster: Cluster, helm: Helm, cidr: str) -> None:
    """Drivers and the wait Job reach the API on 443/6443: to any address, or to the CIDR of
    the API server's endpoints (never the `kubernetes` Service IP: egress is matched after
    its address translation)."""
    namespace = f"moaa-egress-{len(cidr)}"
    restricted_namespace(kube_cluster, namespace)
    objects = helm.template(
        "default", "--namespace", namespace, "--set", f"networkPolicy.apiServerCIDR={cidr}"
    )
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    api_rules = [
        rule
        for policy in policies
        for rule in policy["spec"].get("egress", [])
        if {p["port"] for p in rule.get("ports", [])} == {443, 6443}
    ]
    assert len(api_rules) == 3  # stats, forecast, the wait Job
    for rule in api_rules:
        assert rule.get("to", []) == ([{"ipBlock": {"cidr": cidr}}] if cidr else [])
    assert not _rejections([kube_cluster.apply(p, namespace) for p in policies])


def test_helm_install_then_upgrade_with_changed_values(
    kube_cluster: Cluster, helm: Helm, tmp_path: Path
) -> None:
    """The pinned helm itself against the API server: install, then upgrade with other values.

    Hooks are skipped (`--no-hooks`: the wait Job would never complete without a kubelet).
    A Job's pod template is immutable, so the data Job's name carries a hash of its inputs:
    the upgrade succeeds, replaces the data Job by the one its new values name, and keeps the
    generated MongoDB passwords (read back with `lookup`).
    """
    namespace = "moaa-helm"
    restricted_namespace(kube_cluster, namespace)
    helm.env["KUBECONFIG"] = str(kube_cluster.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        common = [
            "moaa",
            str(helm.chart),
            "--namespace",
            namespace,
            "--no-hooks",
            "--timeout",
            "2m",
        ]
        helm.run("install", *common, *helm.values_args("kind"))
        secret = f"/api/v1/namespaces/{namespace}/secrets/moaa-mongo-insert"
        password = kube_cluster.get(secret)["data"]["password"]
        jobs_path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
        before = {j["metadata"]["name"] for j in kube_cluster.get(jobs_path)["items"]}
        upgrade = helm.run(
            "upgrade", *common, *helm.values_args("kind"),
            "--set", "logLevel=DEBUG,data.resources.limits.memory=1Gi",
        )  # fmt: skip
        assert "has been upgraded" in upgrade.stdout, upgrade.stdout + upgrade.stderr
        after = {j["metadata"]["name"] for j in kube_cluster.get(jobs_path)["items"]}
        assert len(before) == len(after) == 1 and before != after, (before, after)
        assert kube_cluster.get(secret)["data"]["password"] == password
        # Values the data Job does not read keep its name: no needless re-run.
        again = helm.template("kind", "--namespace", namespace, "--set", "dashboard.replicas=3")
        assert before <= {o["metadata"]["name"] for o in again if o["kind"] == "Job"}
    finally:
        helm.env.pop("KUBECONFIG", None)


def test_the_api_server_really_judges(kube_cluster: Cluster, helm: Helm) -> None:
    """Guards the test above: a broken object of each kind of check is refused or warned."""
    namespace = "moaa-negative"
    restricted_namespace(kube_cluster, namespace)
    objects = {object_ref(o): o for o in helm.template("default", "--namespace", namespace)}
    kafka = json.loads(json.dumps(objects["Kafka/moaa"]))
    kafka["spec"]["kafka"]["metricsConfig"].pop("valueFrom")  # a CEL rule of the Kafka CRD
    pod = json.loads(json.dumps(objects["Pod/moaa-test-data-flowing"]))
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    deployment = json.loads(json.dumps(objects["Deployment/moaa-insert"]))
    deployment["spec"]["template"]["spec"]["securityContext"].pop("seccompProfile")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop("seccompProfile")
    topic = json.loads(json.dumps(objects["KafkaTopic/weather-observations"]))
    topic["spec"]["partitions"] = 0  # the CRD's OpenAPI schema (minimum 1)
    user = json.loads(json.dumps(objects["KafkaUser/moaa-insert"]))
    user["spec"]["authorisation"] = user["spec"].pop("authorization")  # a typo: unknown field
    results = {o["kind"]: kube_cluster.apply(o, namespace) for o in (kafka, pod, topic, user)}
    assert results["Kafka"].status == 422, results["Kafka"].message
    assert results["Pod"].status == 403 and "PodSecurity" in results["Pod"].message
    assert results["KafkaTopic"].status == 422, results["KafkaTopic"].message
    # Server-side apply answers a field outside the schema with a 500 ("typed patch").
    assert "not declared in schema" in results["KafkaUser"].message, results["KafkaUser"]
    warned = kube_cluster.apply(deployment, namespace)
    assert warned.ok and any("PodSecurity" in w for w in warned.warnings), warned


class _AllowAll(BaseHTTPRequestHandler):
    """Stands in for the Spark operator's webhook pod: admits every AdmissionReview."""

    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": True},
        }
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def webhook_stand_in(kube_cluster: Cluster) -> Iterator[int]:
    """An HTTPS server on loopback answering like the webhook (the API server's certificate)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AllowAll)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pki = kube_cluster.pki
    context.load_cert_chain(str(pki / "apiserver.crt"), str(pki / "apiserver.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def spark_webhooks(kube_cluster: Cluster) -> Iterator[list[dict[str, Any]]]:
    """The Spark operator's webhook configurations as rendered (removed again afterwards)."""
    text = (UPSTREAM / "spark-operator-webhooks.yaml").read_text()
    configs = [d for d in yaml.safe_load_all(text) if d]
    for config in configs:
        assert kube_cluster.apply(config, NAMESPACE).ok
    yield configs
    for config in configs:
        kube_cluster.delete(config, NAMESPACE)


def _wait_job_run(
    kube_cluster: Cluster, job: dict[str, Any], workdir: Path
) -> subprocess.CompletedProcess[str]:
    """Run the wait Job's container command here, as its ServiceAccount, for a few seconds."""
    token = kube_cluster.post(
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{WEBHOOK_WAIT}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )["status"]["token"]
    sa_dir = workdir / "serviceaccount"
    sa_dir.mkdir(exist_ok=True)
    (sa_dir / "token").write_text(token)
    (sa_dir / "namespace").write_text(NAMESPACE)
    (sa_dir / "ca.crt").write_text((kube_cluster.pki / "ca.crt").read_text())
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-c"]
    env = {e["name"]: e["value"] for e in container["env"]}
    host, port = kube_cluster.url.removeprefix("https://").split(":")
    env |= {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "MOAA_SERVICEACCOUNT_DIR": str(sa_dir),
        "MOAA_WAIT_TIMEOUT_S": "3",
        "MOAA_WAIT_INTERVAL_S": "0.5",
        "PATH": os.environ["PATH"],
    }
    return subprocess.run(
        [sys.executable, "-c", container["args"][0]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hooks_wait_for_the_spark_webhook(
    kube_cluster: Cluster,
    helm: Helm,
    spark_webhooks: list[dict[str, Any]],
    webhook_stand_in: int,
    tmp_path: Path,
) -> None:
    """The Spark operator's webhook configurations exist (failurePolicy Fail), its pod does not.

    The release's own objects are all accepted, since none of them goes through that webhook;
    a SparkApplication is refused, which is why they are hooks; the wait Job keeps failing
    (its dry-run create is refused the same way) until the webhook answers, and then the
    SparkApplications, created after it, are accepted.
    """
    restricted_namespace(kube_cluster, NAMESPACE)
    phases = helm_phases(helm.template("default"))
    release, hooks = phases.release, phases.post_install
    assert not _rejections([kube_cluster.apply(o, NAMESPACE) for o in release])
    [wait_job] = [h for h in hooks if h["kind"] == "Job"]
    apps = [h for h in hooks if h["kind"] == "SparkApplication"]
    assert [object_ref(h) for h in hooks] == [object_ref(wait_job), *map(object_ref, apps)]
    assert kube_cluster.apply(wait_job, NAMESPACE).ok

    refused = kube_cluster.apply(apps[0], NAMESPACE)
    assert refused.status >= 400 and "sparkoperator.k8s.io" in refused.message, refused
    waiting = _wait_job_run(kube_cluster, wait_job, tmp_path)
    assert waiting.returncode != 0, waiting.stdout
    assert "waiting for the Spark operator webhook" in waiting.stdout
    assert "gave up after 3 s" in waiting.stderr and "failed calling webhook" in waiting.stderr

    # The operator starts and patches its caBundle: here the stand-in, reached by URL.
    ca_bundle = base64.b64encode((kube_cluster.pki / "ca.crt").read_bytes()).decode()
    for config in spark_webhooks:
        for hook in config["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {
                "url": f"https://127.0.0.1:{webhook_stand_in}{path}",
                "caBundle": ca_bundle,
            }
        assert kube_cluster.apply(config, NAMESPACE).ok
    answered = _wait_job_run(kube_cluster, wait_job, tmp_path)
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert "admits SparkApplications" in answered.stdout
    assert not _rejections([kube_cluster.apply(app, NAMESPACE) for app in apps])
