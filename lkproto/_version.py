"""The package version, kept in one place (also sent to the server in ``ClientInfo.version``)."""

from __future__ import annotations

__version__ = "0.1.0"
