"""The cached toolchain runs: helm, FerretDB, kube-apiserver and etcd report their pinned versions."""

from __future__ import annotations

import subprocess

from moaa.localstack import versions
from moaa.localstack.toolchain import Toolchain


def test_helm_is_the_pinned_version(toolchain: Toolchain) -> None:
    out = subprocess.run(
        [toolchain.helm(), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith(versions.HELM_VERSION), out.stdout


def test_ferretdb_is_the_pinned_version(toolchain: Toolchain) -> None:
    out = subprocess.run(
        [toolchain.ferretdb(), "--version"], capture_output=True, text=True, check=True
    )
    assert f"version: {versions.FERRETDB_VERSION}" in out.stdout + out.stderr, out.stdout


def test_spark_connector_jars_match_spark(toolchain: Toolchain) -> None:
    names = sorted(p.name for p in toolchain.spark_jars())
    assert f"spark-sql-kafka-0-10_2.13-{versions.SPARK_VERSION}.jar" in names
    assert f"spark-token-provider-kafka-0-10_2.13-{versions.SPARK_VERSION}.jar" in names
    assert any(n.startswith("kafka-clients-") for n in names)
    assert any(n.startswith("commons-pool2-") for n in names)
    assert not any(n.startswith(("scala-library", "slf4j-api", "hadoop-client")) for n in names)


def test_kube_control_plane_is_the_pinned_version(toolchain: Toolchain) -> None:
    binaries = toolchain.kube_control_plane()
    api = subprocess.run(
        [binaries / "kube-apiserver", "--version"], capture_output=True, text=True, check=True
    )
    assert api.stdout.strip() == f"Kubernetes {versions.KUBERNETES_VERSION}", api.stdout
    etcd = subprocess.run(
        [binaries / "etcd", "--version"], capture_output=True, text=True, check=True
    )
    assert f"etcd Version: {versions.KUBERNETES_ETCD_VERSION.removeprefix('v')}" in etcd.stdout
