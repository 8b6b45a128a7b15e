"""``moaa local``: run the real local stack (Kafka + FerretDB) on loopback.

Settings come from ``MOAA_*`` environment variables (see ``moaa local settings``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from moaa.common.logs import configure_logging
from moaa.localstack.services import LocalStack, StackError
from moaa.localstack.settings import LocalStackSettings
from moaa.localstack.toolchain import Toolchain, ToolchainError

app = typer.Typer(
    help="Run the local stack: a real Kafka broker (KRaft) and FerretDB (MongoDB wire) "
    "on 127.0.0.1.\n\n"
    "State (data, logs, pid files) lives in MOAA_STATE_DIR (default .local/); the toolchain "
    "(Kafka jars, FerretDB, helm, Spark connector) is cached in MOAA_CACHE_DIR "
    "(default ~/.cache/moaa).",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

Services = Annotated[
    list[str] | None,
    typer.Argument(
        help="kafka, ferretdb, producer, stats, insert. Default: up starts kafka and "
        "ferretdb, down stops everything, status shows the services and any running or "
        "failed component (one that ended without `down`: its exit code and log tail)."
    ),
]


def _stack() -> LocalStack:
    settings = LocalStackSettings()
    configure_logging(settings.log_level, settings.log_format, component="localstack")
    return LocalStack(settings)


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(1)


def _print_status(stack: LocalStack, names: list[str] | None, as_json: bool) -> bool:
    statuses = stack.status(names)
    if as_json:
        print(json.dumps([s.__dict__ for s in statuses]))
    else:
        table = Table(title=f"moaa local stack ({stack.settings.state_dir.resolve()})")
        for col in ("service", "state", "pid", "address", "detail"):
            table.add_column(col)
        for s in statuses:
            state = (
                "[green]healthy"
                if s.healthy
                else (
                    "[yellow]unhealthy"
                    if s.running
                    else ("[bold red]failed" if s.failed else "[red]stopped")
                )
            )
            table.add_row(s.name, state, str(s.pid or "-"), s.address, s.detail)
        console.print(table)
    return all(s.healthy for s in statuses)


@app.command()
def up(names: Services = None) -> None:
    """Start the services (fetching the toolchain on first use) and wait until they are healthy."""
    stack = _stack()
    try:
        stack.up(names)
    except (StackError, ToolchainError) as exc:
        raise _fail(exc) from None
    _print_status(stack, names, as_json=False)
    console.print("Reach them with:")
    for key, value in stack.env_exports().items():
        console.print(f"  export {key}={value}")


@app.command()
def down(names: Services = None) -> None:
    """Stop the services (SIGTERM, then SIGKILL after 30 s). Data is kept."""
    stack = _stack()
    try:
        stopped = stack.down(names)
    except StackError as exc:
        raise _fail(exc) from None
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command()
def status(
    names: Services = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show each service's process and health. Exit code 1 unless all are healthy."""
    try:
        healthy = _print_status(_stack(), names, as_json)
    except StackError as exc:
        raise _fail(exc) from None
    raise typer.Exit(0 if healthy else 1)


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help="kafka or ferretdb")],
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many last lines.")] = 50,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines.")
    ] = False,
) -> None:
    """Print a service's log (``<state dir>/logs/<name>.log``)."""
    try:
        [svc] = _stack().select([name])
    except StackError as exc:
        raise _fail(exc) from None
    path = svc.log_path
    if not path.exists():
        raise _fail(StackError(f"no log at {path}: has `moaa local up` run here?"))
    with path.open(errors="replace") as fh:
        for line in fh.readlines()[-lines:]:
            sys.stdout.write(line)
        while follow:
            line = fh.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.3)


@app.command()
def toolchain() -> None:
    """Fetch and cache every non-Python tool (Kafka jars, FerretDB, helm, Spark connector)."""
    settings = LocalStackSettings()
    configure_logging(settings.log_level, settings.log_format, component="localstack")
    try:
        where = Toolchain(settings.cache_dir).ensure_all()
    except ToolchainError as exc:
        raise _fail(exc) from None
    for tool, path in where.items():
        console.print(f"{tool:12} {path}")


@app.command()
def env() -> None:
    """Print ``export`` lines that point other moaa commands at this stack."""
    for key, value in _stack().env_exports().items():
        print(f"export {key}={value}")


@app.command()
def settings() -> None:
    """Show every local-stack setting, its environment variable, value and meaning."""
    current = LocalStackSettings()
    table = Table(title="moaa local settings")
    for col in ("variable", "value", "meaning"):
        table.add_column(col)
    for name, info in LocalStackSettings.model_fields.items():
        table.add_row(f"MOAA_{name.upper()}", str(getattr(current, name)), info.description or "")
    console.print(table)
