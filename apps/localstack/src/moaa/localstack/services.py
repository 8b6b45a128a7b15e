"""Run the real local services (Kafka in KRaft combined mode, FerretDB on SQLite).

Each service runs as its own detached process (its own session, so ``Ctrl-C`` in the
terminal that started it does not kill it), writes its log under
``<state>/logs/<name>.log`` and records ``<state>/run/<name>.json`` (pid, process start
time, ports). The start time guards against pid reuse: a pid file whose process is
gone, or is another process now, does not count as running. A service that ends without
``moaa local down`` (a crash, ``kill -9``, an OOM kill) leaves its pid file behind and, when
it exited by itself, its exit code in ``<state>/run/<name>.exit`` (written by the ``sh``
that starts it): ``moaa local status`` shows it as *failed*, with the code and the last log
lines, until ``moaa local up`` starts it again or ``moaa local down`` clears it.

The same :class:`LocalStack` runs ``moaa local up`` and the pytest session fixtures
(with a temporary state dir and free ports), so the tests exercise what users run.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import psutil

from moaa.common.errors import MoaaError
from moaa.localstack.settings import LocalStackSettings
from moaa.localstack.toolchain import (
    Toolchain,
    ToolchainError,
    java_major_version,
    require_command,
)

__all__ = [
    "FerretDB",
    "Kafka",
    "LocalStack",
    "Service",
    "ServiceStatus",
    "StackError",
    "port_is_free",
]

log = logging.getLogger(__name__)


class StackError(MoaaError):
    """A service cannot start or is unhealthy; the message says why and what to do."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _port_owner(port: int) -> str:
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if (
                conn.laddr
                and conn.laddr.port == port
                and conn.status == psutil.CONN_LISTEN
                and conn.pid
            ):
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline()[:3])[:80]})"
    except (psutil.Error, OSError):
        pass
    return "another process"


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return "(no log yet)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass(frozen=True)
class ServiceStatus:
    """What ``moaa local status`` shows for one service."""

    name: str
    running: bool
    healthy: bool
    pid: int | None
    address: str
    detail: str
    #: Not running, and nobody stopped it: it crashed or was killed (``detail`` says how).
    failed: bool = False


class Service(ABC):
    """One local server process: how to prepare, start and health-check it."""

    name: str

    def __init__(self, settings: LocalStackSettings, toolchain: Toolchain) -> None:
        self.settings = settings
        self.toolchain = toolchain
        self.state_dir = settings.state_dir.resolve()
        self.home = self.state_dir / self.name

    @property
    @abstractmethod
    def ports(self) -> list[int]: ...

    @property
    @abstractmethod
    def address(self) -> str: ...

    @abstractmethod
    def command(self) -> list[str]:
        """Prepare on-disk state if needed and return the command line to run."""

    @abstractmethod
    def check_health(self) -> tuple[bool, str]:
        """``(healthy, detail)``; must not raise and must return within ~2 s."""

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    # -- process bookkeeping --------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    @property
    def _pid_path(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.json"

    @property
    def _exit_path(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.exit"

    def _forget(self) -> None:
        self._pid_path.unlink(missing_ok=True)
        self._exit_path.unlink(missing_ok=True)

    def process(self) -> psutil.Process | None:
        """The running process of this service, or ``None``."""
        try:
            info = json.loads(self._pid_path.read_text())
            proc = psutil.Process(info["pid"])
            if (
                abs(proc.create_time() - info["create_time"]) < 1
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                return proc
        except (FileNotFoundError, json.JSONDecodeError, KeyError, psutil.Error):
            pass
        return None

    def failure(self) -> str | None:
        """How the service ended if it is not running and nobody stopped it, else ``None``."""
        if not self._pid_path.exists() or self.process() is not None:
            return None
        try:
            code = int(self._exit_path.read_text())
            how = f"exited with code {code}" + (f" (signal {code - 128})" if code > 128 else "")
        except (FileNotFoundError, ValueError):
            how = "was killed (no exit code: its whole process group ended)"
        return f"{how}, not by `moaa local down`. Last log lines ({self.log_path}):\n" + _tail(
            self.log_path, 10
        )

    def status(self) -> ServiceStatus:
        proc = self.process()
        if proc is None:
            failure = self.failure()
            detail = failure or "not running"
            return ServiceStatus(self.name, False, False, None, self.address, detail, bool(failure))
        healthy, detail = self.check_health()
        return ServiceStatus(self.name, True, healthy, proc.pid, self.address, detail)

    def start(self) -> None:
        """Start the process unless it already runs, then wait until it is healthy."""
        if self.process() is not None:
            log.info("%s already running", self.name)
        else:
            for port in self.ports:
                if not port_is_free(port):
                    raise StackError(
                        f"{self.name}: port {port} on 127.0.0.1 is busy, held by "
                        f"{_port_owner(port)}. Stop it or choose other ports "
                        "(see `moaa local settings`)."
                    )
            cmd = self.command()
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._pid_path.parent.mkdir(parents=True, exist_ok=True)
            self._forget()
            # A shell records the exit code when the service ends by itself (not when the
            # whole process group is stopped or killed): `status` then says how it failed.
            record_exit = ["sh", "-c", '"$@"; echo $? > "$0"', str(self._exit_path)]
            with self.log_path.open("ab") as out:
                proc = subprocess.Popen(
                    [*record_exit, *cmd],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.home,
                    env=self.env(),
                    start_new_session=True,
                )
            create_time = psutil.Process(proc.pid).create_time()
            self._pid_path.write_text(
                json.dumps({"pid": proc.pid, "create_time": create_time, "ports": self.ports})
            )
            log.info("%s started (pid %d), log: %s", self.name, proc.pid, self.log_path)
        self.wait_healthy()

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        detail = "no answer yet"
        while time.monotonic() < deadline:
            if self.process() is None:
                raise StackError(
                    f"{self.name} exited while starting. "
                    f"Last log lines ({self.log_path}):\n{_tail(self.log_path)}"
                )
            healthy, detail = self.check_health()
            if healthy:
                log.info("%s healthy at %s", self.name, self.address)
                return
            time.sleep(0.5)
        raise StackError(
            f"{self.name} not healthy after {self.settings.start_timeout_s:.0f} s ({detail}). "
            f"Last log lines ({self.log_path}):\n{_tail(self.log_path)}"
        )

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop gracefully (SIGTERM), then SIGKILL after ``timeout_s``. True if it was running."""
        proc = self.process()
        if proc is None:
            self._forget()  # a failed service is cleared
            return False
        # The whole group: the recording shell ends at once, the service when it has stopped.
        members = [proc, *_children(proc)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(members, timeout_s)
        if alive:
            log.warning("%s did not stop within %.0f s, killing it", self.name, timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            psutil.wait_procs(alive, 10)
        self._forget()
        log.info("%s stopped", self.name)
        return True


def _kafka_cluster_id() -> str:
    # Kafka's own format (what `kafka-storage random-uuid` prints): url-safe base64, no padding.
    # Like Kafka's Uuid.randomUuid, never one starting with "-": the storage tool would read
    # it as an option ("--cluster-id: expected one argument"), about one start in 64.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class Kafka(Service):
    """Apache Kafka, one node in KRaft combined mode (broker + controller), loopback only."""

    name = "kafka"

    @property
    def ports(self) -> list[int]:
        return [self.settings.kafka_port, self.settings.kafka_controller_port]

    @property
    def address(self) -> str:
        return self.settings.kafka_bootstrap

    def _properties(self) -> str:
        s = self.settings
        data = self.home / "data"
        # A static controller quorum (voters) rather than a dynamic one: the ports may change
        # between runs, and a dynamic quorum records the controller endpoint in its log.
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # The broker default is 7 days too; topics also set retention.ms explicitly.
            "log.retention.hours": "168",
            "auto.create.topics.enable": "false",
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def command(self) -> list[str]:
        java = require_command("java")
        kafka_home = self.toolchain.kafka_home()
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "server.properties"
        config.write_text(self._properties())
        classpath = str(kafka_home / "libs" / "*")
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id_file = self.home / "cluster.id"
            if not cluster_id_file.exists():
                cluster_id_file.write_text(_kafka_cluster_id())
            fmt = subprocess.run(
                [java, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t",
                 cluster_id_file.read_text().strip(), "-c", str(config), "--ignore-formatted"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if fmt.returncode != 0:
                raise StackError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        heap = self.settings.kafka_heap
        # An OutOfMemoryError ends the broker at once (`moaa local status` shows it failed)
        # instead of leaving a JVM that no longer answers.
        return [
            java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={kafka_home / 'log4j2.properties'}",
            "-cp", classpath, "kafka.Kafka", str(config),
        ]  # fmt: skip

    def check_health(self) -> tuple[bool, str]:
        from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - keep CLI start fast

        if port_is_free(self.settings.kafka_port):
            return False, "listener not open"
        admin = AdminClient(
            {"bootstrap.servers": self.address, "log_level": 0, "socket.timeout.ms": 2000}
        )
        try:
            meta = admin.list_topics(timeout=2)
        except Exception as exc:
            return False, str(exc)
        return True, f"{len(meta.brokers)} broker, {len(meta.topics)} topics"


class FerretDB(Service):
    """FerretDB v1 on its SQLite backend: a real MongoDB-wire server, loopback only."""

    name = "ferretdb"

    @property
    def ports(self) -> list[int]:
        return [self.settings.mongo_port, self.settings.ferretdb_debug_port]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings.mongo_port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DO_NOT_TRACK": "1", "FERRETDB_TELEMETRY": "disable"}

    def command(self) -> list[str]:
        binary = self.toolchain.ferretdb()
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            str(binary),
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--listen-addr=127.0.0.1:{self.settings.mongo_port}",
            f"--debug-addr=127.0.0.1:{self.settings.ferretdb_debug_port}",
            f"--state-dir={self.home}",
            "--telemetry=disable",
            "--log-level=warn",
        ]

    def check_health(self) -> tuple[bool, str]:
        from pymongo import MongoClient  # noqa: PLC0415 - keep CLI start fast

        if port_is_free(self.settings.mongo_port):
            return False, "listener not open"
        client: MongoClient[dict[str, object]] = MongoClient(
            self.settings.mongo_uri, serverSelectionTimeoutMS=1500, connectTimeoutMS=1500
        )
        try:
            info = client.admin.command("buildInfo")
        except Exception as exc:
            return False, str(exc).splitlines()[0][:120]
        finally:
            client.close()
        ferret = info.get("ferretdbVersion", "?")
        return True, f"FerretDB {ferret} (MongoDB {info.get('version', '?')} wire)"


class MoaaApp(Service):
    """One of our own long-running components (``moaa <command>``), run like the services.

    It reaches the local Kafka and FerretDB through ``MOAA_*`` variables derived from the
    stack's settings, logs JSON to ``<state>/logs/<name>.log``, and is healthy when its
    ``/readyz`` answers 200.
    """

    def __init__(
        self,
        settings: LocalStackSettings,
        toolchain: Toolchain,
        name: str,
        port_setting: str,
        health_path: str = "/readyz",
        port_env: str | None = None,
        spark: bool = False,
        extra_port_settings: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        super().__init__(settings, toolchain)
        self.port_setting = port_setting
        self.health_path = health_path
        # The variable the component reads its port from (Spark jobs all read MOAA_SPARK_UI_PORT).
        self.port_env = port_env or f"MOAA_{port_setting.upper()}"
        self.spark = spark
        # More ports the component serves (e.g. the forecast job's ops port beside its Spark
        # UI), each passed as MOAA_<SETTING>.
        self.extra_port_settings = extra_port_settings

    @property
    def port(self) -> int:
        return int(getattr(self.settings, self.port_setting))

    @property
    def ports(self) -> list[int]:
        return [self.port, *(int(getattr(self.settings, s)) for s in self.extra_port_settings)]

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def env(self) -> dict[str, str]:
        run = self.state_dir / "run"
        env = {
            **os.environ,
            "MOAA_LOG_FORMAT": "json",
            "MOAA_STATE_DIR": str(self.state_dir),
            "MOAA_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "MOAA_MONGO_URI": self.settings.mongo_uri,
            "MOAA_SOCKET_PATH": str(run / "producer.sock"),
            "MOAA_CHECKPOINT_DIR": str(self.state_dir / "checkpoints"),
            self.port_env: str(self.port),
        }
        for setting in self.extra_port_settings:
            env[f"MOAA_{setting.upper()}"] = str(getattr(self.settings, setting))
        if self.spark:
            env["MOAA_SPARK_JARS"] = ",".join(str(p) for p in self.toolchain.spark_jars())
        return env

    def command(self) -> list[str]:
        self.home.mkdir(parents=True, exist_ok=True)
        moaa = shutil.which("moaa", path=os.path.dirname(sys.executable)) or shutil.which("moaa")
        if moaa is None:
            raise StackError(
                "the `moaa` command is not installed in this environment (run `make venv`)"
            )
        return [moaa, self.name]

    def check_health(self) -> tuple[bool, str]:
        import urllib.request  # noqa: PLC0415 - only needed here

        try:
            url = f"http://127.0.0.1:{self.port}{self.health_path}"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200, resp.read().decode()[:120]
        except OSError as exc:
            return False, str(exc)[:120]


#: What ``moaa local up`` starts when no service is named.
INFRASTRUCTURE = ("kafka", "ferretdb")


class LocalStack:
    """Kafka and FerretDB, plus our own components: what ``moaa local`` drives."""

    def __init__(self, settings: LocalStackSettings | None = None) -> None:
        self.settings = settings or LocalStackSettings()
        self.toolchain = Toolchain(self.settings.cache_dir)
        self.services: dict[str, Service] = {
            svc.name: svc
            for svc in (
                Kafka(self.settings, self.toolchain),
                FerretDB(self.settings, self.toolchain),
                MoaaApp(self.settings, self.toolchain, "producer", "producer_metrics_port"),
                MoaaApp(
                    self.settings,
                    self.toolchain,
                    "stats",
                    "spark_ui_port",
                    "/metrics/prometheus/",
                    spark=True,
                ),
                MoaaApp(
                    self.settings,
                    self.toolchain,
                    "forecast",
                    "forecast_ui_port",
                    "/metrics/prometheus/",
                    port_env="MOAA_SPARK_UI_PORT",
                    spark=True,
                    extra_port_settings=("forecast_metrics_port",),
                ),
                MoaaApp(self.settings, self.toolchain, "insert", "insert_metrics_port"),
                MoaaApp(self.settings, self.toolchain, "dashboard", "dashboard_port", "/healthz"),
            )
        }

    def select(self, names: list[str] | None) -> list[Service]:
        if not names:
            return list(self.services.values())
        unknown = [n for n in names if n not in self.services]
        if unknown:
            raise StackError(
                f"unknown service {', '.join(unknown)}; known: {', '.join(self.services)}"
            )
        return [self.services[n] for n in names]

    def preflight(self) -> None:
        """Fail early, with the fix, on what would make a start fail later."""
        state = self.settings.state_dir.resolve()
        state.mkdir(parents=True, exist_ok=True)
        free_mb = shutil.disk_usage(state).free // (1024 * 1024)
        if free_mb < self.settings.min_free_disk_mb:
            raise StackError(
                f"only {free_mb} MiB free under {state}; the stack needs "
                f"{self.settings.min_free_disk_mb} MiB (MOAA_MIN_FREE_DISK_MB). Free some space."
            )
        ports = [p for svc in self.services.values() for p in svc.ports]
        if len(set(ports)) != len(ports):
            raise StackError(f"two services are configured on the same port: {sorted(ports)}")
        try:
            if java_major_version() < 17:
                raise StackError(
                    f"Kafka 4 needs Java 17+, `java` on PATH is {java_major_version()}: "
                    "install a Java 17+ JDK or put it first on PATH (JAVA_HOME/bin)."
                )
        except ToolchainError as exc:
            raise StackError(str(exc)) from None

    def up(self, names: list[str] | None = None) -> list[ServiceStatus]:
        """Start ``names`` (default: the infrastructure), in dependency order."""
        names = names or list(INFRASTRUCTURE)
        self.preflight()
        for svc in self.select(names):
            svc.start()
        return self.status(names)

    def down(self, names: list[str] | None = None) -> list[str]:
        """Stop ``names`` (default: everything), our components before the services."""
        return [svc.name for svc in reversed(self.select(names)) if svc.stop()]

    def status(self, names: list[str] | None = None) -> list[ServiceStatus]:
        """Status of ``names`` (default: the infrastructure and any running or failed
        component)."""
        if names is None:
            names = [
                n
                for n, s in self.services.items()
                if n in INFRASTRUCTURE or s.process() or s.failure()
            ]
        return [svc.status() for svc in self.select(names)]

    def env_exports(self) -> dict[str, str]:
        """The settings other moaa commands read to reach this stack."""
        return {
            "MOAA_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "MOAA_MONGO_URI": self.settings.mongo_uri,
        }
