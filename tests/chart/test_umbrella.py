"""The real umbrella (our chart with its four pinned subcharts) on a real API server.

Runs when the dependency packages are at hand: ``charts/moaa/charts/*.tgz`` (after
``make chart-deps``, as the kind workflow does before its chart checks) or, on the
development machines, the packaged copies in ``shared/charts/``. Otherwise it skips with the
reason: no chart repository is reachable where ``make test`` runs.

Every CRD of the four charts is installed, and the whole render is created in Helm's order in
a namespace enforcing the restricted Pod Security Standard. With no operator running, the
only objects the server may refuse are our SparkApplications (the Spark operator's webhook
does not answer); that they are post-install hooks behind the wait Job is
test_apiserver.py's subject.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from moaa.localstack.toolchain import Toolchain

from .apiserver import (
    Cluster,
    control_plane,
    helm_phases,
    install_crds,
    read_manifests,
    restricted_namespace,
)
from .conftest import CHART, NAMESPACE, Helm

#: The laptop profiles: node-exporter and Grafana's test pod are off there (restricted PSS).
PROFILES = ["kind", "minikube"]


def _packages() -> list[Path] | None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    names = [f"{d['name']}-{d['version']}.tgz" for d in meta["dependencies"]]
    shared = Path(os.environ.get("MOAA_SHARED_DIR", CHART.parents[2] / "shared")) / "charts"
    for folder in (CHART / "charts", shared):
        if all((folder / n).is_file() for n in names):
            return [folder / n for n in names]
    return None


@pytest.fixture(scope="module")
def packages() -> list[Path]:
    found = _packages()
    if found is None:
        pytest.skip("the four dependency packages are not here: run `make chart-deps`")
    return found


@pytest.fixture(scope="module")
def umbrella(packages: list[Path], helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """A copy of charts/moaa with its dependencies in charts/ (helm renders them all)."""
    copy = tmp_path_factory.mktemp("umbrella") / "moaa"
    shutil.copytree(CHART, copy, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    (copy / "charts").mkdir()
    for package in packages:
        shutil.copy(package, copy / "charts")
    return Helm(helm.binary, copy, tmp_path_factory.mktemp("umbrella-helm-home"))


@pytest.fixture(scope="module")
def umbrella_cluster(
    packages: list[Path], toolchain: Toolchain, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Its own API server (the subcharts add cluster-wide objects), with every CRD installed."""
    crds = []
    for package in packages:
        with tarfile.open(package) as tar:
            for member in tar.getmembers():
                path = Path(member.name)
                if member.isfile() and path.parent.name == "crds" and path.suffix == ".yaml":
                    text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
                    crds += [
                        d
                        for d in read_manifests(text)
                        if d.get("kind") == "CustomResourceDefinition"
                    ]
    with control_plane(toolchain.kube_control_plane(), tmp_path_factory.mktemp("kube")) as cluster:
        install_crds(cluster, crds)
        yield cluster


@pytest.mark.parametrize("profile", PROFILES)
def test_the_whole_umbrella_is_accepted(
    umbrella_cluster: Cluster, umbrella: Helm, profile: str
) -> None:
    restricted_namespace(umbrella_cluster, NAMESPACE)
    phases = helm_phases(umbrella.template(profile))
    objects = [obj for phase in phases for obj in phase]
    assert len(objects) > 150, "the subcharts did not render"
    results = [umbrella_cluster.apply(obj, NAMESPACE) for obj in objects]
    refused = {r.ref: r.message for r in results if not r.ok}
    warned = {r.ref: r.warnings for r in results if r.ok and r.warnings}
    assert not warned, warned
    assert set(refused) == {"SparkApplication/moaa-stats", "SparkApplication/moaa-forecast"}, (
        refused
    )
    assert all("failed calling webhook" in m for m in refused.values()), refused
