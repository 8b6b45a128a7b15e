"""Render the moaa chart offline, once per values profile.

No chart repository is reachable here (nor, in CI, needed): the umbrella chart's third-party
dependencies are fetched by `helm dependency build` on the user's machine only. `helm lint`
and `helm template` refuse a chart whose declared dependencies are missing from `charts/`, so
the tests render **a copy** of the chart whose Chart.yaml has its `dependencies` list removed:
exactly our templates, values and schema, with the subcharts' values left in place (Helm
passes them on untouched). What the copy drops is what we do not own; that the real
Chart.yaml declares them, pinned and with their repositories, is tested separately.
helm is the pinned binary the toolchain builds (`moaa local toolchain`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from moaa.localstack.toolchain import Toolchain

from .apiserver import Cluster, control_plane, install_crds, read_manifests

CHART = Path(__file__).resolve().parents[2] / "charts" / "moaa"
#: The pinned operator charts' CRDs for the kinds we render (see upstream/PROVENANCE.md).
UPSTREAM = Path(__file__).resolve().parent / "upstream"
KUBE_VERSION = "1.35.0"
RELEASE = "moaa"
NAMESPACE = "moaa"
#: Values profiles rendered by every test: name → values files (relative to the chart).
PROFILES: dict[str, list[str]] = {
    "default": [],
    "kind": ["values-kind.yaml"],
    "minikube": ["values-minikube.yaml"],
    "production": ["ci/production-values.yaml"],
}


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    cache = Path(os.environ.get("MOAA_CACHE_DIR", Path.home() / ".cache" / "moaa"))
    return Toolchain(cache).helm()


@pytest.fixture(scope="session")
def offline_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of charts/moaa without its dependency list (see the module docstring)."""
    copy = tmp_path_factory.mktemp("chart") / "moaa"
    shutil.copytree(CHART, copy, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    meta = yaml.safe_load((copy / "Chart.yaml").read_text())
    meta.pop("dependencies", None)
    (copy / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return copy


class Helm:
    """Runs the pinned helm with private, empty config/cache/data dirs (no repositories)."""

    def __init__(self, binary: Path, chart: Path, home: Path) -> None:
        self.binary, self.chart = binary, chart
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, check=False
        )
        if check and proc.returncode:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def values_args(self, profile: str, extra: list[str] | None = None) -> list[str]:
        args = [a for f in PROFILES[profile] for a in ("-f", str(self.chart / f))]
        return args + (extra or [])

    def template(self, profile: str, *extra: str) -> list[dict[str, Any]]:
        out = self.run(
            "template", RELEASE, str(self.chart), "--namespace", NAMESPACE,
            "--kube-version", KUBE_VERSION, *self.values_args(profile, list(extra)),
        ).stdout  # fmt: skip
        return [d for d in yaml.safe_load_all(out) if d]

    def lint(self, profile: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            "lint", str(self.chart), "--strict", "--kube-version", KUBE_VERSION,
            *self.values_args(profile), check=False,
        )  # fmt: skip


@pytest.fixture(scope="session")
def helm(helm_bin: Path, offline_chart: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_bin, offline_chart, tmp_path_factory.mktemp("helm-home"))


_RENDERED: dict[str, list[dict[str, Any]]] = {}


@pytest.fixture(scope="session", params=list(PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rendered(helm: Helm, profile: str) -> Iterator[list[dict[str, Any]]]:
    """Every object `helm template` renders for the profile (hooks and tests included)."""
    if profile not in _RENDERED:
        _RENDERED[profile] = helm.template(profile)
    yield _RENDERED[profile]


@pytest.fixture(scope="session")
def kube_cluster(
    toolchain: Toolchain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A real etcd + kube-apiserver on loopback, with the pinned operators' CRDs installed."""
    with control_plane(toolchain.kube_control_plane(), tmp_path_factory.mktemp("kube")) as cluster:
        files = sorted((UPSTREAM / "crds").glob("*.yaml"))
        install_crds(cluster, [crd for f in files for crd in read_manifests(f.read_text())])
        yield cluster
