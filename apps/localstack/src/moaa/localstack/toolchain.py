"""Fetch and cache the non-Python toolchain: Kafka jars, FerretDB, helm, the Spark connector,
and kube-apiserver + etcd for the chart's tests.

Everything comes from the registries this project may use: Maven Central through ``mvn``
(from the poms in ``resources/``) and the Go module proxy through ``go install``. Each
tool lands in ``<cache>/<tool>-<version>/``, built in a temporary folder and renamed into
place when complete, so an interrupted fetch never leaves a half tool behind, and a
second run finds the folder and does nothing. A file lock keeps concurrent runs
(``make demo`` beside ``make test``) from fetching the same thing twice.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from moaa.common.errors import MoaaError
from moaa.localstack import versions

__all__ = ["Toolchain", "ToolchainError", "java_major_version", "require_command"]

log = logging.getLogger(__name__)

_HINTS = {
    "java": "install a Java 17+ JDK (Debian: apt-get install openjdk-17-jdk-headless)",
    "mvn": "install Apache Maven (Debian: apt-get install maven)",
    "go": "install Go 1.24+ from https://go.dev/dl/ (Debian's golang is too old)",
    "openssl": "install OpenSSL (Debian: apt-get install openssl)",
}


#: The Kafka connector and the jars it needs that pyspark does not ship.
SPARK_KAFKA_JARS = (
    f"spark-sql-kafka-0-10_{versions.SCALA_BINARY_VERSION}",
    f"spark-token-provider-kafka-0-10_{versions.SCALA_BINARY_VERSION}",
    "kafka-clients",
    "commons-pool2",
)


class ToolchainError(MoaaError):
    """A prerequisite is missing or a fetch failed; the message says what to do."""


def require_command(name: str) -> str:
    """The absolute path of ``name`` on PATH, or a :class:`ToolchainError` saying how to get it."""
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(f"`{name}` is not on PATH: {_HINTS.get(name, 'install it')}")
    return path


def java_major_version(java: str | None = None) -> int:
    """The major version of the ``java`` on PATH (``java -version`` prints to stderr)."""
    java = java or require_command("java")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise ToolchainError(f"cannot read the Java version from: {out.stderr.strip()!r}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _go_minor_version(go: str) -> int:
    out = subprocess.run([go, "version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"go1\.(\d+)", out)
    return int(match.group(1)) if match else 0


def _run_logged(
    cmd: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as out:
        proc = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, check=False
        )
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise ToolchainError(
            f"`{' '.join(cmd[:4])} …` failed (exit {proc.returncode}); full log: {log_path}\n{tail}"
        )


class Toolchain:
    """The cached tools; every accessor fetches on first use and is a no-op afterwards.

    :param cache_dir: where tools are kept (``MOAA_CACHE_DIR``, default ``~/.cache/moaa``).
    """

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir.expanduser().resolve()

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with (self.cache_dir / f".{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _ensure_dir(self, name: str, fill: Callable[[Path], object]) -> Path:
        """Return ``<cache>/<name>``, creating it with ``fill(tmp_dir)`` when absent."""
        final = self.cache_dir / name
        if final.is_dir():
            return final
        with self._locked(name):
            if final.is_dir():
                return final
            tmp = self.cache_dir / f".{name}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            log.info("fetching %s into %s (first run only)", name, final)
            fill(tmp)
            tmp.rename(final)
        return final

    # -- Maven ----------------------------------------------------------------------------

    def _mvn_copy(
        self, pom: str, props: dict[str, str], out_dir: Path, only: tuple[str, ...] = ()
    ) -> None:
        mvn = require_command("mvn")
        with resources.as_file(resources.files("moaa.localstack") / "resources" / pom) as pom_path:
            # -U: retry artifacts whose earlier failure Maven cached in ~/.m2 (*.lastUpdated).
            cmd = [
                mvn, "-B", "-q", "-U", "-f", str(pom_path),
                *(f"-D{k}={v}" for k, v in props.items()),
                f"{versions.MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={out_dir / 'libs'}",
                *([f"-DincludeArtifactIds={','.join(only)}"] if only else []),
            ]  # fmt: skip
            _run_logged(cmd, self.cache_dir / "logs" / f"{pom}.log", cwd=out_dir)

    def kafka_home(self) -> Path:
        """Kafka broker jars (``libs/``) plus our log4j2 configuration."""

        def fill(tmp: Path) -> None:
            if java_major_version() < 17:
                raise ToolchainError("Kafka 4 needs Java 17 or newer: " + _HINTS["java"])
            self._mvn_copy("kafka-pom.xml", {"kafka.version": versions.KAFKA_VERSION}, tmp)
            jars = {p.name for p in (tmp / "libs").glob("*.jar")}
            if f"kafka_2.13-{versions.KAFKA_VERSION}.jar" not in jars:
                raise ToolchainError(f"mvn did not fetch kafka_2.13-{versions.KAFKA_VERSION}.jar")
            conf = resources.files("moaa.localstack") / "resources" / "kafka-log4j2.properties"
            (tmp / "log4j2.properties").write_text(conf.read_text())

        return self._ensure_dir(f"kafka-{versions.KAFKA_VERSION}", fill)

    def spark_jars(self) -> list[Path]:
        """The Kafka connector jars for Spark, exactly matching the pinned Spark version."""

        def fill(tmp: Path) -> None:
            self._mvn_copy(
                "spark-kafka-pom.xml",
                {"spark.version": versions.SPARK_VERSION},
                tmp,
                SPARK_KAFKA_JARS,
            )
            missing = [a for a in SPARK_KAFKA_JARS if not list((tmp / "libs").glob(f"{a}-*.jar"))]
            if missing:
                raise ToolchainError(f"mvn did not fetch {', '.join(missing)}")

        home = self._ensure_dir(f"spark-kafka-{versions.SPARK_VERSION}", fill)
        return sorted((home / "libs").glob("*.jar"))

    # -- Go -------------------------------------------------------------------------------

    def _go_install(
        self, module: str, version: str, binary: str, min_go_minor: int, ldflags: str = ""
    ) -> Path:
        def fill(tmp: Path) -> None:
            go = require_command("go")
            if _go_minor_version(go) < min_go_minor:
                raise ToolchainError(
                    f"{module}@{version} needs Go 1.{min_go_minor}+: " + _HINTS["go"]
                )
            env = {**os.environ, "GOBIN": str(tmp), "CGO_ENABLED": "0"}
            flags = ["-trimpath", *([f"-ldflags={ldflags}"] if ldflags else [])]
            _run_logged(
                [go, "install", *flags, f"{module}@{version}"],
                self.cache_dir / "logs" / f"{binary}-{version}.log",
                env=env,
                cwd=tmp,
            )

        return self._ensure_dir(f"{binary}-{version}", fill) / binary

    def ferretdb(self) -> Path:
        """The FerretDB v1 binary (SQLite backend compiled in, pure Go).

        FerretDB refuses to start without ``build/version/version.txt``, which its own build
        generates (``bin/task gen-version``) and the module zip lacks, so a bare
        ``go install …@v1.24.2`` builds a binary that panics. We do what its build does:
        take the pinned module from the Go module proxy, write that file, and build.
        """
        version = versions.FERRETDB_VERSION

        def fill(tmp: Path) -> None:
            go = require_command("go")
            if _go_minor_version(go) < 24:
                raise ToolchainError(f"FerretDB {version} needs Go 1.24+: " + _HINTS["go"])
            logs = self.cache_dir / "logs"
            module = versions.FERRETDB_MODULE.removesuffix("/cmd/ferretdb")
            _run_logged(
                [go, "mod", "download", "-json", f"{module}@{version}"],
                logs / "ferretdb-download.json",
                cwd=tmp,
            )
            source_dir = json.loads((logs / "ferretdb-download.json").read_text())["Dir"]
            src = tmp / "src"
            shutil.copytree(source_dir, src)
            for path in [src, *src.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o200)
            (src / "build" / "version" / "version.txt").write_text(version + "\n")
            env = {**os.environ, "CGO_ENABLED": "0"}
            _run_logged(
                [go, "build", "-trimpath", "-o", str(tmp / "ferretdb"), "./cmd/ferretdb"],
                logs / f"ferretdb-{version}.log",
                env=env,
                cwd=src,
            )
            shutil.rmtree(src)

        return self._ensure_dir(f"ferretdb-{version}", fill) / "ferretdb"

    def helm(self) -> Path:
        """The helm binary used to lint and render the charts."""
        # helm's Makefile stamps the full version with ldflags; `go install` alone says "v4.3".
        stamp = f"-X helm.sh/helm/v4/internal/version.version={versions.HELM_VERSION}"
        return self._go_install(versions.HELM_MODULE, versions.HELM_VERSION, "helm", 26, stamp)

    def kube_control_plane(self) -> Path:
        """A folder holding ``kube-apiserver`` and ``etcd`` (tests/kube runs them on loopback).

        ``k8s.io/kubernetes`` is not meant to be a dependency: its go.mod points its 31
        staging modules (``k8s.io/api``, ``k8s.io/apiserver``, …) at ``./staging/…``, which a
        module zip cannot serve. A wrapper module requires it and maps each staging module
        to the matching published ``v0.<minor>.<patch>`` release, then builds both binaries
        (about 10 min of CPU on 2 cores the first time; Go's build cache keeps later builds
        short).
        """
        version = versions.KUBERNETES_VERSION
        staging_version = "v0." + version.removeprefix("v1.")
        major, minor = version.removeprefix("v").split(".")[:2]

        def fill(tmp: Path) -> None:
            go = require_command("go")
            if _go_minor_version(go) < 25:
                raise ToolchainError(f"Kubernetes {version} needs Go 1.25+: " + _HINTS["go"])
            logs = self.cache_dir / "logs"
            download = logs / "kubernetes-download.json"
            _run_logged([go, "mod", "download", "-json", f"k8s.io/kubernetes@{version}"], download)
            gomod = Path(json.loads(download.read_text())["GoMod"]).read_text()
            staging = re.findall(r"^\s*(k8s\.io/\S+) => \./staging/", gomod, re.MULTILINE)
            if not staging:
                raise ToolchainError(f"no staging modules found in k8s.io/kubernetes@{version}")
            src = tmp / "src"
            src.mkdir()
            (src / "go.mod").write_text(
                "module moaa.local/kube-control-plane\n\ngo 1.25.0\n\nrequire (\n"
                f"\tk8s.io/kubernetes {version}\n"
                f"\tgo.etcd.io/etcd/server/v3 {versions.KUBERNETES_ETCD_VERSION}\n)\n\nreplace (\n"
                + "".join(f"\t{m} => {m} {staging_version}\n" for m in staging)
                + ")\n"
            )
            (src / "tools.go").write_text(
                "//go:build tools\n\npackage controlplane\n\nimport (\n"
                '\t_ "go.etcd.io/etcd/server/v3/etcdmain"\n'
                '\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n)\n'
            )
            env = {**os.environ, "CGO_ENABLED": "0"}
            _run_logged([go, "mod", "tidy"], logs / "kube-control-plane-tidy.log", env, src)
            stamp = {"gitVersion": version, "gitMajor": major, "gitMinor": minor}
            ldflags = " ".join(
                f"-X k8s.io/component-base/version.{k}={v}" for k, v in stamp.items()
            )
            builds = (
                ("etcd", "go.etcd.io/etcd/server/v3", ""),
                ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", ldflags),
            )
            for binary, package, flags in builds:
                out = str(tmp / binary)
                cmd = [go, "build", "-trimpath", f"-ldflags={flags}", "-o", out, package]
                _run_logged(cmd, logs / f"{binary}-{version}.log", env, src)
            shutil.rmtree(src)

        return self._ensure_dir(f"kube-control-plane-{version}", fill)

    def ensure_all(self) -> dict[str, Path]:
        """Fetch every tool (what ``make setup`` runs); returns where each one is."""
        return {
            "kafka": self.kafka_home(),
            "spark-kafka": self.spark_jars()[0].parent,
            "ferretdb": self.ferretdb(),
            "helm": self.helm(),
            "kubernetes": self.kube_control_plane(),
        }
