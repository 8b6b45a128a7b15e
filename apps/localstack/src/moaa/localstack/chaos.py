"""A seeded chaos run over the whole local chain (``make chaos``, ``bench/chaos.py``).

A prepared slice is replayed twice through the real local chain at tick 0 (feeder,
producer, Kafka, stats, forecast, insert, FerretDB, website), each run on its own Kafka and
FerretDB on free loopback ports: once without faults (the *reference*), once while a seeded
schedule ``kill -9``\\ s one component at a time (its whole process group, as a container
crash) and restarts it the way users do. The services restart through the same
:class:`~moaa.localstack.services.Service` objects as ``moaa local up``; the feeder is run
again, as ``make demo`` is, and resumes from its checkpoint. A component that ends by itself
meanwhile (a job that loses its broker) is restarted too, as Kubernetes would, and counted.
Once both runs have settled every collection is compared with the reference, document by
document (all fields but the insert job's ``updated_at`` stamp).

The forecast job trains in the foreground here (``MOAA_FORECAST_TRAIN_IN_BACKGROUND=false``):
with trainings beside issuing, which model scores an hour depends on how long a training
took, so two runs would differ without any fault.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import psutil
from confluent_kafka import Consumer, TopicPartition
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from moaa.common.hours import parse_hour
from moaa.common.kafka import (
    TOPIC_DLQ,
    TOPIC_FORECAST_SKILL,
    TOPIC_FORECASTS,
    TOPIC_HOURLY_STATS,
    TOPIC_HOURLY_SUMMARY,
    kafka_lag,
)
from moaa.common.records import COLLECTIONS
from moaa.localstack.services import LocalStack
from moaa.localstack.settings import LocalStackSettings
from moaa.localstack.testing import free_ports

__all__ = ["COMPONENTS", "Fault", "Report", "compare", "run_chaos", "schedule"]

log = logging.getLogger("moaa.chaos")

#: The jobs ``moaa local up`` runs beside Kafka and FerretDB, in start order.
JOBS = ("producer", "stats", "forecast", "insert", "dashboard")
#: What the schedule may kill: the feeder and every service of the local stack.
SERVICES = ("kafka", "ferretdb", *JOBS)
COMPONENTS = ("feeder", *SERVICES)
#: Settings the jobs of both runs get (see the module's docstring).
JOB_ENV = {"MOAA_FORECAST_TRAIN_IN_BACKGROUND": "false", "MOAA_SPARK_MASTER": "local[2]"}
#: The forecast job's final lag (its default, which the runs keep).
FINAL_LAG_HOURS = int(os.environ.get("MOAA_FORECAST_FINAL_LAG_HOURS", "3"))
RESULT_TOPICS = (TOPIC_HOURLY_STATS, TOPIC_HOURLY_SUMMARY, TOPIC_FORECASTS, TOPIC_FORECAST_SKILL)
_CAUGHT_UP_GAUGES = frozenset({"weather_forecast_final_hour_timestamp_seconds"})


@dataclass(frozen=True)
class Fault:
    """Kill ``component`` ``after_s`` seconds after the previous fault's restart (the
    feeder's: once it has sent ``at_fraction`` of the slice's hours)."""

    component: str
    after_s: float
    at_fraction: float | None = None


def schedule(seed: int, faults: int, gap_s: tuple[float, float] = (5.0, 20.0)) -> list[Fault]:
    """The seeded fault schedule: every component once, in a seeded order after the feeder,
    then seeded picks among the services up to ``faults``.

    The feeder comes first, at a seeded point of its replay: at tick 0 it is the one
    component whose work is over within seconds.
    """
    if faults < len(COMPONENTS):
        raise ValueError(
            f"{faults} faults cannot reach each of the {len(COMPONENTS)} components once"
        )
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule, not a secret
    order = list(SERVICES)
    rng.shuffle(order)
    order += [rng.choice(SERVICES) for _ in range(faults - len(COMPONENTS))]
    plan = [Fault("feeder", 0.0, round(rng.uniform(0.2, 0.6), 2))]
    return plan + [Fault(name, round(rng.uniform(*gap_s), 1)) for name in order]


# -- comparison ---------------------------------------------------------------------------------

#: Stamped by the insert job when it writes (wall time), not part of a result.
_VOLATILE = frozenset({"updated_at"})


def _normal(value: Any) -> Any:
    """A stored value made comparable: floats to 9 significant digits (what survives the
    JSON round trips of both runs alike), dates in UTC."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def snapshot(mongo_uri: str, database: str = "moaa") -> dict[str, dict[str, Any]]:
    """Every result document of ``database``: collection → ``_id`` → fields."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=10_000)
    try:
        db = client[database]
        return {
            name: {str(doc.pop("_id")): _normal(doc) for doc in db[name].find()}
            for name in COLLECTIONS
        }
    finally:
        client.close()


def compare(
    reference: dict[str, dict[str, Any]], got: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per collection: documents compared, missing, extra and different, with a few ids."""
    out: dict[str, dict[str, Any]] = {}
    for name in COLLECTIONS:
        ref, run = reference.get(name, {}), got.get(name, {})
        missing = sorted(ref.keys() - run.keys())
        extra = sorted(run.keys() - ref.keys())
        different = sorted(k for k in ref.keys() & run.keys() if ref[k] != run[k])
        out[name] = {
            "documents": len(ref),
            "missing": len(missing),
            "extra": len(extra),
            "different": len(different),
            "examples": (missing + extra + different)[:3],
        }
    return out


def mismatches(comparison: dict[str, dict[str, Any]]) -> int:
    return sum(c["missing"] + c["extra"] + c["different"] for c in comparison.values())


# -- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    """One replay of the slice through its own local stack."""

    work: Path
    dataset: Path
    year: int
    end: datetime
    hours: int
    stack: LocalStack = field(init=False)
    feeder: subprocess.Popen[bytes] | None = field(init=False, default=None)
    feeder_done: bool = field(init=False, default=False)
    restarts: Counter[str] = field(init=False, default_factory=Counter)

    def __post_init__(self) -> None:
        p = free_ports(10)
        settings = LocalStackSettings(
            state_dir=self.work / "stack", kafka_port=p[0], kafka_controller_port=p[1],
            mongo_port=p[2], ferretdb_debug_port=p[3], producer_metrics_port=p[4],
            spark_ui_port=p[5], insert_metrics_port=p[6], forecast_ui_port=p[7],
            forecast_metrics_port=p[8], dashboard_port=p[9], min_free_disk_mb=256,
        )  # fmt: skip
        self.stack = LocalStack(settings)

    @property
    def state(self) -> Path:
        return self.stack.settings.state_dir.resolve()

    @property
    def checkpoint(self) -> Path:
        return self.state / "feeder" / "checkpoint.json"

    def start(self) -> None:
        self.stack.up()
        self.stack.up(list(JOBS))
        self.start_feeder()

    def start_feeder(self) -> None:
        """``moaa feeder --tick 0`` as ``make demo`` runs it (resuming from its checkpoint)."""
        env = {
            **os.environ,
            "MOAA_LOG_FORMAT": "json",
            "MOAA_DATASET_DIR": str(self.dataset),
            "MOAA_REPLAY_YEAR": str(self.year),
            "MOAA_REPLAY_END": self.end.isoformat(),
            "MOAA_SOCKET_PATH": str(self.state / "run" / "producer.sock"),
            "MOAA_CHECKPOINT_PATH": str(self.checkpoint),
            "MOAA_FEEDER_METRICS_PORT": "0",
        }
        moaa = shutil.which("moaa", path=os.path.dirname(sys.executable)) or "moaa"
        logs = self.state / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / "feeder.log").open("ab") as out:
            self.feeder = subprocess.Popen(
                [moaa, "feeder", "--tick", "0"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def sent_fraction(self) -> float:
        """How much of the slice the feeder's checkpoint says is acknowledged."""
        try:
            next_hour = parse_hour(json.loads(self.checkpoint.read_text())["next_hour"])
        except (FileNotFoundError, ValueError, KeyError):
            return 0.0
        return min(1.0, 1 - (self.end - next_hour).total_seconds() / 3600 / self.hours)

    def kill(self, name: str) -> bool:
        """``kill -9`` the component's process group; False if it was not running."""
        if name == "feeder":
            proc = self.feeder
            if proc is None or proc.poll() is not None:
                return False
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        svc = self.stack.services[name]
        running = svc.process()
        if running is None:
            return False
        members = [running, *running.children(recursive=True)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(running.pid, signal.SIGKILL)
        psutil.wait_procs(members, 30)
        return True

    def restart(self, name: str) -> None:
        if name == "feeder":
            self.start_feeder()
        else:
            self.stack.services[name].start()

    def supervise(self) -> None:
        """Restart whatever ended by itself (the feeder unless it finished its replay)."""
        if self.feeder is not None and not self.feeder_done:
            code = self.feeder.poll()
            if code == 0:
                self.feeder_done = True
            elif code is not None:
                log.warning("feeder exited with %s by itself: restarting it", code)
                self.restarts["feeder"] += 1
                self.start_feeder()
        for name in SERVICES:
            svc = self.stack.services[name]
            if svc.process() is None:
                log.warning("%s ended by itself: restarting it", name, extra={"how": svc.failure()})
                self.restarts[name] += 1
                svc.start()

    def fingerprint(self) -> tuple[Any, ...]:
        """Counts and newest write per collection: unchanged while nothing arrives."""
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.stack.settings.mongo_uri, serverSelectionTimeoutMS=5_000
        )
        try:
            db = client["moaa"]
            newest = [
                next(db[n].find({}, {"updated_at": 1}).sort("updated_at", -1), {})
                for n in COLLECTIONS
            ]
            return tuple(
                (db[name].count_documents({}), doc.get("updated_at"))
                for name, doc in zip(COLLECTIONS, newest, strict=True)
            )
        finally:
            client.close()

    def _forecast_gauges(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.stack.settings.forecast_metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        return {
            name: float(value)
            for name, _, value in (line.partition(" ") for line in text.splitlines())
            if name in _CAUGHT_UP_GAUGES
        }

    def caught_up(self) -> str | None:
        """What the chain still lacks to have handled the whole slice, or ``None``: the
        feeder finished, the stats of the last hour stored, the forecast job's last final
        hour the final lag behind the last hour, the insert job's offsets at the ends of the
        result topics."""
        if not self.feeder_done:
            return "the feeder replays"
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.stack.settings.mongo_uri, serverSelectionTimeoutMS=5_000
        )
        try:
            if client["moaa"]["hourly_summary"].find_one({"hour": self.end}) is None:
                return "no stats yet for the last hour"
        finally:
            client.close()
        gauges = self._forecast_gauges()
        final = gauges.get("weather_forecast_final_hour_timestamp_seconds", 0.0)
        if final < self.end.timestamp() - 3600 * FINAL_LAG_HOURS:
            return f"the forecast job's last final hour is {final:.0f}"
        lag = kafka_lag(
            {"bootstrap.servers": self.stack.settings.kafka_bootstrap},
            "moaa-insert",
            list(RESULT_TOPICS),
            timeout_s=10,
        )()
        if lag["total"] != 0:
            return f"the insert job lags by {lag['total']} messages"
        return None

    def settle(self, quiet_s: float, timeout_s: float) -> float:
        """Supervise until the chain has caught up and no document changed for ``quiet_s``;
        return how long it took."""
        began = time.monotonic()
        last: tuple[Any, ...] | None = None
        since = time.monotonic()
        why: str | None = "not checked yet"
        while time.monotonic() - began < timeout_s:
            self.supervise()
            try:
                why = self.caught_up()
                now = None if why else self.fingerprint()
            except (PyMongoError, OSError) as exc:  # a service restarting: not settled yet
                why, now = str(exc)[:200], None
            if now is None or now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return time.monotonic() - began
            time.sleep(2)
        raise RuntimeError(
            f"the chain did not settle within {timeout_s:.0f} s: {why} "
            f"(logs: {self.state / 'logs'})"
        )

    def dead_letters(self) -> tuple[int, int]:
        """Messages on the dead-letter topic, and distinct rejected lines among them."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.stack.settings.kafka_bootstrap,
                "group.id": f"chaos-{os.getpid()}",
                "enable.auto.commit": False,
            }
        )
        try:
            meta = consumer.list_topics(TOPIC_DLQ, timeout=10).topics[TOPIC_DLQ]
            parts = [TopicPartition(TOPIC_DLQ, p, 0) for p in meta.partitions]
            highs = {tp.partition: consumer.get_watermark_offsets(tp)[1] for tp in parts}
            consumer.assign(parts)
            total, lines = 0, set()
            deadline = time.monotonic() + 120
            while total < sum(highs.values()) and time.monotonic() < deadline:
                for msg in consumer.consume(500, timeout=2):
                    if msg.error() is None:
                        total += 1
                        value = json.loads(msg.value() or b"{}")
                        lines.add((value.get("source"), value.get("line")))
            return total, len(lines)
        finally:
            consumer.close()

    def website(self) -> dict[str, Any]:
        """The website's answer for the stations and the pipeline (both must be 200)."""
        base = f"http://127.0.0.1:{self.stack.settings.dashboard_port}"
        out: dict[str, Any] = {}
        for path in ("/api/stations", "/api/pipeline"):
            with urllib.request.urlopen(base + path, timeout=30) as resp:  # noqa: S310 - http
                out[path] = resp.status
                if path == "/api/stations":
                    out["stations"] = len(json.load(resp)["station_id"])
        return out

    def stop(self) -> None:
        if self.feeder is not None and self.feeder.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.feeder.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.feeder.wait(20)
        self.stack.down()


@contextlib.contextmanager
def _running(run: Run) -> Iterator[Run]:
    try:
        run.start()
        yield run
    finally:
        run.stop()


# -- the whole experiment -----------------------------------------------------------------------


@dataclass
class Report:
    seed: int
    faults: list[dict[str, Any]]
    restarted_by_themselves: dict[str, int]
    records: int
    documents: int
    mismatches: int
    collections: dict[str, dict[str, Any]]
    dead_letters: dict[str, Any]
    website: dict[str, Any]
    seconds: dict[str, float]

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)


def _inject(run: Run, plan: list[Fault], timeout_s: float) -> list[dict[str, Any]]:
    """Carry out ``plan`` on a running ``run``, supervising it between faults."""
    done: list[dict[str, Any]] = []
    began = time.monotonic()
    for fault in plan:
        deadline = time.monotonic() + fault.after_s
        while time.monotonic() < deadline:
            run.supervise()
            time.sleep(0.5)
        if fault.at_fraction is not None:
            feeder = run.feeder
            while run.sent_fraction() < fault.at_fraction and feeder and feeder.poll() is None:
                time.sleep(0.005)
        at = time.monotonic() - began
        where = run.sent_fraction()
        killed = run.kill(fault.component)
        took = time.monotonic()
        if killed:
            run.restart(fault.component)
        entry = {
            "component": fault.component,
            "at_s": round(at, 1),
            "replayed": round(where, 3),
            "killed": killed,
            "restart_s": round(time.monotonic() - took, 1),
        }
        log.info(
            "fault %d/%d: %s %s at %.1f s (%.0f %% replayed), back in %.1f s",
            len(done) + 1, len(plan), fault.component,
            "killed" if killed else "not running, not", entry["at_s"], 100 * where,
            entry["restart_s"],
        )  # fmt: skip
        done.append(entry)
        if time.monotonic() - began > timeout_s:
            raise RuntimeError(f"faults still pending after {timeout_s:.0f} s: {entry}")
    return done


def run_chaos(
    dataset: Path,
    work: Path,
    year: int,
    end: datetime,
    hours: int,
    records: int,
    seed: int = 1,
    faults: int = 12,
    gap_s: tuple[float, float] = (5.0, 20.0),
    quiet_s: float = 45.0,
    timeout_s: float = 1800.0,
) -> Report:
    """Replay ``dataset`` without and with the seeded faults; compare the results.

    :data:`JOB_ENV` is set for the runs' processes only: the caller's environment (a test
    session's, whose later tests start jobs from it) is restored afterwards.
    """
    with mock.patch.dict(os.environ, JOB_ENV):
        return _run_chaos(dataset, work, year, end, hours, records, seed, faults, gap_s,
                          quiet_s, timeout_s)  # fmt: skip


def _run_chaos(
    dataset: Path,
    work: Path,
    year: int,
    end: datetime,
    hours: int,
    records: int,
    seed: int,
    faults: int,
    gap_s: tuple[float, float],
    quiet_s: float,
    timeout_s: float,
) -> Report:
    plan = schedule(seed, faults, gap_s)
    seconds: dict[str, float] = {}
    began = time.monotonic()
    reference = Run(work / "reference", dataset, year, end, hours)
    with _running(reference):
        seconds["reference_settle"] = round(reference.settle(quiet_s, timeout_s), 1)
        expected = snapshot(reference.stack.settings.mongo_uri)
        ref_dlq = reference.dead_letters()
        ref_web = reference.website()
    seconds["reference"] = round(time.monotonic() - began, 1)
    began = time.monotonic()
    chaos = Run(work / "chaos", dataset, year, end, hours)
    with _running(chaos):
        injected = _inject(chaos, plan, timeout_s)
        seconds["chaos_settle"] = round(chaos.settle(quiet_s, timeout_s), 1)
        got = snapshot(chaos.stack.settings.mongo_uri)
        dlq = chaos.dead_letters()
        web = chaos.website()
    seconds["chaos"] = round(time.monotonic() - began, 1)
    comparison = compare(expected, got)
    return Report(
        seed=seed,
        faults=injected,
        restarted_by_themselves=dict(chaos.restarts),
        records=records,
        documents=sum(c["documents"] for c in comparison.values()),
        mismatches=mismatches(comparison),
        collections=comparison,
        dead_letters={
            "reference": {"messages": ref_dlq[0], "lines": ref_dlq[1]},
            "chaos": {"messages": dlq[0], "lines": dlq[1]},
        },
        website={"reference": ref_web, "chaos": web},
        seconds=seconds,
    )
