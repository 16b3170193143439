"""The HTTP API: a litestar app built by :func:`fulfil.api.app.create_app`.

Controllers stay thin (HTTP in, HTTP out); what they decide lives in services and probes.
"""

from __future__ import annotations

from fulfil.api.app import create_app

__all__ = ["create_app"]
