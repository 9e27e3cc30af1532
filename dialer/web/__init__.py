"""The web console: wallboard, supervisor actions, agent page, campaign manager pages and JSON API.

FastAPI and uvicorn run inside the dialer's event loop (:func:`serve_console`); live state comes
from the event bus through :class:`LiveState` and reaches browsers over WebSocket. The console
asks the live services for changes through :class:`ConsoleBackend`; :class:`LocalBackend` is
the in-process implementation for development and tests.
"""

from dialer.web.app import create_app
from dialer.web.backend import BackendError, ConsoleBackend, CustomerView, LocalBackend
from dialer.web.events import (
    CallbackScheduled,
    CampaignStats,
    CampaignStatusChanged,
    DispositionSet,
    SupervisionEnded,
    SupervisionStarted,
)
from dialer.web.live import LiveState, WallboardClient
from dialer.web.server import ConsoleServer, ConsoleService, console_service_factory, serve_console

__all__ = [
    "BackendError",
    "CallbackScheduled",
    "CampaignStats",
    "CampaignStatusChanged",
    "ConsoleBackend",
    "ConsoleServer",
    "ConsoleService",
    "CustomerView",
    "DispositionSet",
    "LiveState",
    "LocalBackend",
    "SupervisionEnded",
    "SupervisionStarted",
    "WallboardClient",
    "console_service_factory",
    "create_app",
    "serve_console",
]
