"""The services `dialer run` starts on top of the core, in order.

Each entry is a factory taking the :class:`~dialer.app.DialerApp` (for its settings,
database, bus and user agent) and returning a started-later :class:`~dialer.app.Service`,
or None when the configuration does not ask for it.
"""

from __future__ import annotations

from dialer.app import ServiceFactory


def default_services() -> list[ServiceFactory]:
    return []
