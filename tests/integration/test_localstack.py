"""The local stack's own behaviour: status, clear errors, idempotent up, stale pid files."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest
from typer.testing import CliRunner

from moaa.common.cli import _register_plugins, app
from moaa.localstack.services import LocalStack, StackError
from moaa.localstack.settings import LocalStackSettings
from moaa.localstack.testing import free_ports

pytestmark = pytest.mark.integration


def test_status_reports_both_healthy(local_stack: LocalStack) -> None:
    statuses = {s.name: s for s in local_stack.status()}
    assert set(statuses) == {"kafka", "ferretdb"}
    assert all(s.running and s.healthy for s in statuses.values()), statuses
    assert "FerretDB v1.24.2" in statuses["ferretdb"].detail


def test_up_again_is_a_no_op(local_stack: LocalStack) -> None:
    pids = {s.name: s.pid for s in local_stack.status()}
    local_stack.up()
    assert {s.name: s.pid for s in local_stack.status()} == pids


def test_cli_status_json_and_exit_code(
    local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = local_stack.settings
    for key, value in {
        "MOAA_STATE_DIR": str(s.state_dir),
        "MOAA_KAFKA_PORT": str(s.kafka_port),
        "MOAA_KAFKA_CONTROLLER_PORT": str(s.kafka_controller_port),
        "MOAA_MONGO_PORT": str(s.mongo_port),
        "MOAA_FERRETDB_DEBUG_PORT": str(s.ferretdb_debug_port),
    }.items():
        monkeypatch.setenv(key, value)
    _register_plugins([])  # every command, whatever pytest's own command line says
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(app, ["local", "status", "--json"])
    finally:  # the CLI configured logging onto the runner's captured stdout
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 0, result.output
    assert {r["name"]: r["healthy"] for r in json.loads(result.output)} == {
        "kafka": True,
        "ferretdb": True,
    }


def test_busy_port_fails_with_a_clear_message(tmp_path) -> None:
    kafka, controller, mongo, debug = free_ports(4)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", mongo))
        squatter.listen()
        settings = LocalStackSettings(
            state_dir=tmp_path, kafka_port=kafka, kafka_controller_port=controller,
            mongo_port=mongo, ferretdb_debug_port=debug, min_free_disk_mb=1,
        )  # fmt: skip
        with pytest.raises(StackError, match=rf"port {mongo} on 127.0.0.1 is busy"):
            LocalStack(settings).up(["ferretdb"])


def test_not_enough_disk_fails_before_starting(tmp_path) -> None:
    settings = LocalStackSettings(state_dir=tmp_path, min_free_disk_mb=10**12)
    with pytest.raises(StackError, match="MiB free"):
        LocalStack(settings).up()


def test_stale_pid_file_is_ignored(tmp_path) -> None:
    settings = LocalStackSettings(state_dir=tmp_path)
    stack = LocalStack(settings)
    run = tmp_path / "run"
    run.mkdir()
    (run / "kafka.json").write_text(json.dumps({"pid": 1, "create_time": 0.0, "ports": []}))
    assert stack.services["kafka"].process() is None
    # not running, and nobody stopped it: failed (e.g. a reboot, or a kill -9) until cleared
    assert stack.services["kafka"].status().failed
    assert stack.down() == []
    assert not (run / "kafka.json").exists()
    assert not stack.services["kafka"].status().failed


def test_a_crashed_component_shows_as_failed_with_its_log(local_stack: LocalStack) -> None:
    producer = local_stack.services["producer"]
    local_stack.up(["producer"])
    try:
        (child,) = producer.process().children()  # type: ignore[union-attr]
        child.kill()  # the component itself dies; the shell that started it records how
        child.wait(10)
        deadline = time.monotonic() + 10
        while producer.process() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        status = {s.name: s for s in local_stack.status()}["producer"]
        assert status.failed and not status.running, status
        assert status.detail.startswith("exited with code 137 (signal 9), not by `moaa local down`")
        assert "producer serving" in status.detail  # the last log lines
    finally:
        local_stack.down(["producer"])
    assert "producer" not in {s.name for s in local_stack.status()}
