"""A real Kubernetes API server (etcd + kube-apiserver) on loopback, and a small client for it.

What it checks that no JSON schema can: the CRDs' own structural schemas and CEL rules, field
defaulting, RBAC escalation checks, Pod Security admission and the other default admission
plugins, and admission webhooks. What it does not run: a scheduler, controllers or a kubelet,
so nothing is ever scheduled, no Deployment gets pods and no Job completes.

Certificates (a throw-away CA, the serving certificate, an admin client certificate in
``system:masters``) and the service-account signing key are generated with ``openssl`` into
the fixture's temp folder. The binaries come from the toolchain cache
(``Toolchain.kube_control_plane``, built from the Go module proxy by ``make setup``).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import yaml

from moaa.localstack.testing import free_ports
from moaa.localstack.toolchain import require_command

__all__ = [
    "HELM_INSTALL_ORDER",
    "ApiError",
    "Applied",
    "Cluster",
    "Phases",
    "control_plane",
    "helm_phases",
    "install_crds",
    "object_ref",
    "read_manifests",
    "restricted_namespace",
]

#: How long etcd and the API server may take to answer their health checks.
START_TIMEOUT_S = 90.0
#: The `kubernetes` Service range (the API server needs one; nothing gets an address here).
SERVICE_CIDR = "10.96.0.0/24"
FIELD_MANAGER = "moaa-chart-tests"
#: The order `helm install` creates a release's objects in (Helm's InstallOrder, the kinds our
#: chart and its subcharts use); kinds not listed (custom resources) come last.
HELM_INSTALL_ORDER = (
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "ConfigMap", "StorageClass",
    "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleBinding", "Role", "RoleBinding", "Service", "DaemonSet", "Pod",
    "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
    "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
)  # fmt: skip


class ApiError(RuntimeError):
    """The API server could not be started or answered something unexpected."""


@dataclass(frozen=True)
class Applied:
    """One server-side apply: the HTTP status, the server's answer and its warnings."""

    ref: str
    status: int
    body: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in (200, 201)

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


def object_ref(obj: dict[str, Any]) -> str:
    """``Kind/name`` of a manifest, for messages."""
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


class Phases(NamedTuple):
    """A render split the way `helm install` and then `helm test` create it."""

    pre_install: list[dict[str, Any]]
    release: list[dict[str, Any]]
    post_install: list[dict[str, Any]]
    tests: list[dict[str, Any]]


def helm_phases(objects: list[dict[str, Any]]) -> Phases:
    """Pre-install hooks (by weight), the release's own objects (in Helm's install order),
    post-install hooks (by weight), test hooks. Hooks of other events (upgrade, delete) are
    left out: an install does not create them."""
    phases = Phases([], [], [], [])
    for obj in objects:
        hook = ((obj.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", "")
        events = set(hook.replace(" ", "").split(",")) - {""}
        if not events:
            phases.release.append(obj)
        elif "test" in events:
            phases.tests.append(obj)
        elif "pre-install" in events:
            phases.pre_install.append(obj)
        elif "post-install" in events:
            phases.post_install.append(obj)
    order = {kind: i for i, kind in enumerate(HELM_INSTALL_ORDER)}
    phases.release.sort(key=lambda o: order.get(o["kind"], len(order)))
    for hooks in (phases.pre_install, phases.post_install):
        hooks.sort(key=lambda o: int(o["metadata"]["annotations"].get("helm.sh/hook-weight", "0")))
    return phases


def _openssl(*args: str, cwd: Path) -> None:
    openssl = require_command("openssl")  # a ToolchainError saying how to get it
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise ApiError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")


def _signed_cert(pki: Path, name: str, subject: str, extensions: str) -> None:
    """``<name>.key`` and ``<name>.crt``, signed by the CA in ``pki``."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=pki)
    (pki / f"{name}.ext").write_text(extensions + "\n")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
        cwd=pki,
    )  # fmt: skip


def generate_pki(pki: Path) -> None:
    """A CA, the API server's serving certificate, an admin client certificate, the SA key."""
    pki.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=moaa-test-ca", cwd=pki,
    )  # fmt: skip
    _signed_cert(
        pki, "apiserver", "/CN=kube-apiserver",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth",
    )  # fmt: skip
    _signed_cert(
        pki, "admin", "/O=system:masters/CN=moaa-test-admin", "extendedKeyUsage=clientAuth"
    )
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key", cwd=pki)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


class Cluster:
    """A client of the test API server: discovery, server-side apply, reads.

    :param url: ``https://127.0.0.1:<port>``.
    :param pki: the folder :func:`generate_pki` filled (CA and admin certificate).
    """

    def __init__(self, url: str, pki: Path) -> None:
        self.url, self.pki = url, pki
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.http = httpx.Client(base_url=url, verify=context, timeout=30.0)
        self._resources: dict[tuple[str, str], tuple[str, bool]] = {}

    def close(self) -> None:
        self.http.close()

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for this server as the admin (for helm and kubectl)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "moaa-test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority": str(self.pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(self.pki / "admin.crt"),
                        "client-key": str(self.pki / "admin.key"),
                    },
                }
            ],
            "contexts": [
                {"name": "moaa-test", "context": {"cluster": "moaa-test", "user": "admin"}}
            ],
            "current-context": "moaa-test",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def get(self, path: str) -> dict[str, Any]:
        response = self.http.get(path)
        if response.status_code != 200:
            raise ApiError(f"GET {path}: {response.status_code} {response.text[:300]}")
        return dict(response.json())

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        if response.status_code not in (200, 201):
            raise ApiError(f"POST {path}: {response.status_code} {response.text[:300]}")
        return dict(response.json())

    def delete(self, obj: dict[str, Any], namespace: str) -> None:
        response = self.http.delete(self.path_of(obj, namespace))
        if response.status_code not in (200, 202, 404):
            raise ApiError(
                f"DELETE {object_ref(obj)}: {response.status_code} {response.text[:300]}"
            )

    def discover(self) -> None:
        """Refresh the kind → resource map (after CRDs are established)."""
        versions = ["/api/v1"] + [
            f"/apis/{v['groupVersion']}"
            for group in self.get("/apis")["groups"]
            for v in group["versions"]
        ]
        for path in versions:
            listing = self.get(path)
            for res in listing["resources"]:
                if "/" not in res["name"]:
                    key = (listing["groupVersion"], res["kind"])
                    self._resources[key] = (res["name"], res["namespaced"])

    def path_of(self, obj: dict[str, Any], namespace: str) -> str:
        """The REST path of ``obj`` (namespaced objects go to ``namespace``)."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        if (api_version, kind) not in self._resources:
            self.discover()
        try:
            plural, namespaced = self._resources[(api_version, kind)]
        except KeyError:
            raise ApiError(f"the API server serves no {kind} in {api_version}") from None
        prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        ns = f"/namespaces/{obj['metadata'].get('namespace', namespace)}" if namespaced else ""
        return f"{prefix}{ns}/{plural}/{obj['metadata']['name']}"

    def apply(self, obj: dict[str, Any], namespace: str, dry_run: bool = False) -> Applied:
        """Server-side apply ``obj`` (force: this test owns every field; unknown fields fail)."""
        params = {"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"}
        if dry_run:
            params["dryRun"] = "All"
        response = self.http.patch(
            self.path_of(obj, namespace),
            params=params,
            content=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        body = response.json() if response.content else {}
        return Applied(
            object_ref(obj),
            response.status_code,
            body,
            response.headers.get_list("warning"),
        )

    def wait_established(self, crd_names: list[str], timeout_s: float = 60.0) -> None:
        """Until every CRD reports ``Established`` (its API is then served)."""
        deadline = time.monotonic() + timeout_s
        pending = set(crd_names)
        while pending:
            for name in sorted(pending):
                crd = self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                conditions = (crd.get("status") or {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise ApiError(f"CRDs not established after {timeout_s:.0f} s: {sorted(pending)}")
            time.sleep(0.2)
        self.discover()


def restricted_namespace(cluster: Cluster, name: str) -> None:
    """A namespace enforcing (and warning and auditing) the restricted Pod Security Standard,
    with the ``default`` ServiceAccount the controller manager would create."""
    level = "restricted"
    labels = {f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "warn", "audit")}
    for obj in (
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
    ):
        applied = cluster.apply(obj, name)
        if not applied.ok:
            raise ApiError(f"{applied.ref}: {applied.status} {applied.message}")


class _ManifestLoader(yaml.SafeLoader):
    """PyYAML's safe loader minus YAML 1.1's ``=`` "value" tag, which some CRDs' enums hold."""


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_manifests(text: str) -> list[dict[str, Any]]:
    """The non-empty documents of a multi-document YAML manifest."""
    return [d for d in yaml.load_all(text, Loader=_ManifestLoader) if d]  # a SafeLoader


def install_crds(cluster: Cluster, crds: list[dict[str, Any]]) -> list[str]:
    """Server-side apply every CustomResourceDefinition given; wait until they are served."""
    for crd in crds:
        applied = cluster.apply(crd, "")
        if not applied.ok:
            raise ApiError(f"{applied.ref}: {applied.status} {applied.message}")
    names = [crd["metadata"]["name"] for crd in crds]
    cluster.wait_established(names)
    return names


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def _wait_ready(check: Any, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise ApiError(f"{what} exited with {proc.returncode}; log {log}:\n{tail}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.3)
    raise ApiError(f"{what} not ready after {START_TIMEOUT_S:.0f} s; log: {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def control_plane(binaries: Path, workdir: Path) -> Iterator[Cluster]:
    """etcd and kube-apiserver on free loopback ports; stopped (and waited for) on exit."""
    pki = workdir / "pki"
    generate_pki(pki)
    etcd_port, peer_port, api_port = free_ports(3)
    etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
    etcd_cmd = [
        str(binaries / "etcd"), "--data-dir", str(workdir / "etcd"),
        "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"default={peer_url}", "--unsafe-no-fsync", "--log-level", "warn",
    ]  # fmt: skip
    api_cmd = [
        str(binaries / "kube-apiserver"), f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
        f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=RBAC",
        f"--cert-dir={workdir / 'certs'}", "--profiling=false", "--v=1",
    ]  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    cluster = Cluster(f"https://127.0.0.1:{api_port}", pki)
    try:
        procs.append(_start(etcd_cmd, workdir / "etcd.log"))
        etcd_health = f"{etcd_url}/health"
        _wait_ready(
            lambda: httpx.get(etcd_health, timeout=2).status_code == 200,
            "etcd", procs[0], workdir / "etcd.log",
        )  # fmt: skip
        procs.append(_start(api_cmd, workdir / "kube-apiserver.log"))
        _wait_ready(
            lambda: cluster.http.get("/readyz").status_code == 200,
            "kube-apiserver", procs[1], workdir / "kube-apiserver.log",
        )  # fmt: skip
        yield cluster
    finally:
        cluster.close()
        for proc in reversed(procs):
            _stop(proc)
