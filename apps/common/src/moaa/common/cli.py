"""The ``moaa`` command.

Each installed moaa package contributes a command group through the entry-point group
``moaa.cli`` (for example ``local = "moaa.localstack.cli:app"``), so an image that installs
only the feeder gets only the feeder's commands. ``moaa <command> …`` imports only that
command's package (the Spark jobs' imports take seconds; the feeder must not pay them);
``moaa --help`` imports them all to list them.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from moaa.common.errors import MoaaError

__all__ = ["app", "main"]

app = typer.Typer(
    name="moaa",
    help="moaa: a Kubernetes-native weather speed layer "
    "(NOAA ISD replay → Kafka → Spark → MongoDB).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root() -> None:
    """moaa: a Kubernetes-native weather speed layer (NOAA ISD replay → Kafka → Spark → MongoDB)."""


def _register_plugins(argv: list[str] | None = None) -> None:
    """Add the installed commands: only the one named on the command line, if any."""
    registered = {group.name for group in app.registered_groups}
    registered |= {cmd.name for cmd in app.registered_commands}
    plugins = sorted(entry_points(group="moaa.cli"), key=lambda e: e.name)
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    named = [ep for ep in plugins if words and ep.name == words[0]]
    for ep in named or plugins:
        if ep.name in registered:
            continue
        sub = ep.load()
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=ep.name)
        else:
            app.command(name=ep.name)(sub)


def main() -> None:
    """Entry point of the ``moaa`` console script: a :class:`~moaa.common.errors.MoaaError`
    that no command handled ends it with ``error: <message>`` and exit code 1."""
    _register_plugins()
    try:
        app()
    except MoaaError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None
