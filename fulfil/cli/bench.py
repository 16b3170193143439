"""``fulfil bench ...``: benchmarks. Each prints one JSON line per result on stdout, progress on stderr."""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

import click

from fulfil.cli import main


@main.group("bench")
def bench() -> None:
    """Benchmarks against the configured database; each prints one JSON line per result."""


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return round(rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024, 1)


def emit(result: dict[str, Any]) -> None:
    """Print one benchmark result as one JSON line on stdout."""
    click.echo(json.dumps(result, ensure_ascii=False))
