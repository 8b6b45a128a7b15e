"""The operations endpoint of every long-running component: /metrics, /healthz, /readyz.

``/healthz`` answers 200 while the process serves HTTP (liveness); ``/readyz`` answers 200
only when the component's own readiness check passes (e.g. the producer's socket is
listening and Kafka answers), with the reason in the body either way.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from moaa.common.errors import MoaaError

__all__ = [
    "STOP_REQUESTED",
    "OpsServer",
    "ReadyCheck",
    "exit_now",
    "exit_on_thread_crash",
    "run_component",
]

log = logging.getLogger(__name__)

#: Set once SIGTERM or SIGINT asked the component to stop (:func:`run_component`): an error
#: after it is the shutdown's (a Spark JVM in the same process group ends with the signal).
STOP_REQUESTED = threading.Event()
ReadyCheck = Callable[[], tuple[bool, str]]


class OpsServer:
    """Serve /metrics, /healthz and /readyz on ``addr:port`` from a daemon thread.

    :param port: TCP port (0 picks a free one; see :attr:`port` after :meth:`start`).
    :param ready: readiness check returning ``(ready, reason)``.
    """

    def __init__(self, port: int, ready: ReadyCheck | None = None, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from outside the pod
        self.ready = ready or (lambda: (True, "ok"))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._send(200, b'{"status": "ok"}', "application/json")
                elif path == "/readyz":
                    ok, reason = outer.ready()
                    body = json.dumps({"status": "ready" if ok else "not ready", "reason": reason})
                    self._send(200 if ok else 503, body.encode(), "application/json")
                else:
                    self._send(404, b'{"error": "not found"}', "application/json")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("ops %s", format % args)

        self._server = ThreadingHTTPServer((addr, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ops-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> OpsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def exit_now(code: int) -> None:
    """End the process with ``code`` at once, logs flushed: no cleanup that could wait on
    something already broken (a dead JVM, a stuck thread), so never a hang."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def exit_on_thread_crash(component: str) -> None:
    """Make an unhandled exception in any thread end the whole process with exit code 1.

    Python's default only prints the traceback and lets the thread die, so the process would
    live on without, e.g., the thread that serves Kafka's delivery reports: alive and
    healthy-looking, but stuck. One critical log line (with the traceback), then exit, so
    the supervisor (Kubernetes, ``moaa local status``) sees a failure and restarts it.
    """

    def _hook(args: threading.ExceptHookArgs) -> None:
        # exc_value is typed optional, but is the SystemExit itself when exc_type is one
        if issubclass(args.exc_type, SystemExit) and args.exc_value.code in (None, 0):  # type: ignore[union-attr]
            return
        name = args.thread.name if args.thread else "?"
        try:
            log.critical(
                "%s: unhandled %s in thread %s; exiting",
                component,
                args.exc_type.__name__,
                name,
                # the hook's fields are typed optional; for an exception they are all set
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
                extra={"crashed_thread": name},
            )
        finally:
            exit_now(1)

    threading.excepthook = _hook


def run_component(
    component: str,
    port: int,
    ready: ReadyCheck,
    run: Callable[[], object],
    stop: Callable[[], None],
) -> None:
    """Run a long-lived component: build info, ops endpoint, graceful stop on SIGTERM/SIGINT.

    :param component: name in ``weather_build_info`` and the logs.
    :param port: ops port (0 = no endpoint).
    :param ready: readiness check for ``/readyz``.
    :param run: the component's main loop; returns when the component is done or stopped.
    :param stop: asks ``run`` to finish (called from the signal handler: must not block).
    """
    from moaa.common.metrics import publish_build_info  # noqa: PLC0415 - avoid an import cycle

    publish_build_info(component, "0.1.0")
    exit_on_thread_crash(component)
    ops = OpsServer(port, ready).start() if port else None

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping %s", signum, component)
        STOP_REQUESTED.set()
        stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        run()
    except MoaaError as exc:
        log.critical("%s failed: %s", component, exc)
        raise SystemExit(exc.exit_code) from None
    finally:
        if ops:
            ops.stop()
