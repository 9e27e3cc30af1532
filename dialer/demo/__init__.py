"""`dialer demo`: the whole product on embedded defaults, with simulated people and carrier.

:mod:`dialer.demo.config` turns ``config/demo/demo.toml`` into real settings and picks the
calling window; :mod:`dialer.wiring` adds the campaign runner and recordings to the app;
:mod:`dialer.demo.people` runs the simulated agents, customers and inbound callers;
:mod:`dialer.demo.view` is the live view; :mod:`dialer.demo.run` runs it all in order.
"""

from dialer.demo.config import DEFAULT_DEMO_FILE, DemoConfig, WindowChoice, choose_window, load_demo_config
from dialer.demo.run import DemoError, DemoOptions, DemoResult, run_demo
from dialer.demo.view import DemoFigures, render, summary_line

__all__ = [
    "DEFAULT_DEMO_FILE",
    "DemoConfig",
    "DemoError",
    "DemoFigures",
    "DemoOptions",
    "DemoResult",
    "WindowChoice",
    "choose_window",
    "load_demo_config",
    "render",
    "run_demo",
    "summary_line",
]
