"""Cluster suite fixtures: the current kube context, the release under test, exec helpers.

Run by `make k8s-test` (K8S_NAMESPACE, K8S_RELEASE; defaults moaa/moaa) against a cluster
where the chart is installed (the kind workflow does: make kind-up images kind-load
k8s-install k8s-test). Without a reachable cluster the whole suite is skipped with one line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from kubernetes import client, config
from kubernetes.stream import stream

T = TypeVar("T")
NAMESPACE = os.environ.get("K8S_NAMESPACE", "moaa")
RELEASE = os.environ.get("K8S_RELEASE", "moaa")


def _cluster_or_reason() -> str | None:
    """None when the current context's API server answers, else why not (one line)."""
    try:
        config.load_kube_config()
    except (config.ConfigException, FileNotFoundError, TypeError) as exc:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            return f"no usable kube context ({str(exc).splitlines()[0] if str(exc) else exc!r})"
    try:
        client.VersionApi().get_code(_request_timeout=5)
    except Exception as exc:
        return f"the API server does not answer ({type(exc).__name__})"
    return None


_REASON = _cluster_or_reason()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a cluster, stop here with one line and exit code 0 (nothing failed)."""
    if _REASON is not None:
        pytest.exit(f"cluster suite skipped: no reachable Kubernetes cluster: {_REASON}", 0)


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float, every_s: float = 5) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except client.ApiException as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


class Cluster:
    """The namespace of the release, with the few API calls the tests need."""

    def __init__(self) -> None:
        self.ns, self.release = NAMESPACE, RELEASE
        self.core = client.CoreV1Api()
        self.apps = client.AppsV1Api()
        self.custom = client.CustomObjectsApi()

    def pods(self, selector: str) -> list[client.V1Pod]:
        return self.core.list_namespaced_pod(self.ns, label_selector=selector).items

    def component_pods(self, component: str, extra: str = "") -> list[client.V1Pod]:
        selector = (
            f"app.kubernetes.io/instance={self.release},app.kubernetes.io/component={component}"
        )
        return self.pods(selector + (f",{extra}" if extra else ""))

    def ready_pod(self, component: str, extra: str = "") -> client.V1Pod | None:
        for pod in self.component_pods(component, extra):
            if (
                pod.metadata.deletion_timestamp is None
                and all(c.ready for c in (pod.status.container_statuses or []))
                and pod.status.phase == "Running"
            ):
                return pod
        return None

    def objects(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object(group, version, self.ns, plural)["items"]

    def exec(self, pod: str, container: str, command: list[str]) -> str:
        return stream(
            self.core.connect_get_namespaced_pod_exec,
            pod,
            self.ns,
            container=container,
            command=command,
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=True,
        )

    def python(self, component: str, container: str, code: str) -> str:
        pod = wait_for(f"a ready {component} pod", lambda: self.ready_pod(component), 600)
        return self.exec(pod.metadata.name, container, ["python", "-c", code])


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    return Cluster()
