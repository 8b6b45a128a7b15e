"""The ``moaa`` command.

Each installed moaa package contributes a command group through the entry-point group
``moaa.cli`` (for example ``local = "moaa.localstack.cli:app"``), so an image that installs
only the feeder gets only the feeder's commands.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="moaa",
    help="moaa: a Kubernetes-native weather speed layer "
    "(NOAA ISD replay → Kafka → Spark → MongoDB).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _register_plugins() -> None:
    registered = {group.name for group in app.registered_groups}
    registered |= {cmd.name for cmd in app.registered_commands}
    for ep in sorted(entry_points(group="moaa.cli"), key=lambda e: e.name):
        if ep.name in registered:
            continue
        sub = ep.load()
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=ep.name)
        else:
            app.command(name=ep.name)(sub)


def main() -> None:
    """Entry point of the ``moaa`` console script."""
    _register_plugins()
    app()
