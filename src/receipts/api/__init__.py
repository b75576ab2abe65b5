"""The HTTP service: ``create_app(ledger, settings)``, served by ``receipts serve``."""

from ..access import Principal
from .app import create_app
from .auth import authenticate
from .settings import Settings

__all__ = ["Principal", "Settings", "authenticate", "create_app"]
