"""The ``fulfil`` command line."""

from __future__ import annotations

import sys
from importlib import import_module

import click
from rich.console import Console

from fulfil.settings import SettingsError

console = Console(stderr=True, soft_wrap=True)

# Each module registers its own commands on ``main``; they are imported when the CLI starts.
_COMMAND_MODULES = [
    "fulfil.cli.admin",
    "fulfil.cli.serve",
    "fulfil.cli.worker",
    "fulfil.cli.demo",
    "fulfil.cli.bench",
    "fulfil.cli.generate",
    "fulfil.cli.intake",
    "fulfil.cli.simulate",
    "fulfil.cli.bench_standard",
    "fulfil.cli.bench_belt",
    "fulfil.cli.bench_vrptw",
    "fulfil.cli.dispatch",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fulfil")
def main() -> None:
    """fulfil — the fulfilment backend of a stream-front, produce-back belt."""


def run() -> None:
    for name in _COMMAND_MODULES:
        import_module(name)
    try:
        main(standalone_mode=True)
    except SettingsError as exc:
        console.print(f"[red]configuration error[/red] {exc}")
        sys.exit(2)
