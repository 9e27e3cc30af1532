"""Call lists: reading CSV/XLSX files and importing them into campaigns.

See :mod:`dialer.lists.importer` for the transaction and counting guarantees. Names are
loaded lazily so that :mod:`dialer.dnc` can use the reader without an import cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ImportConflictError",
    "ImportOptionError",
    "ImportSummary",
    "ListFileError",
    "check_list_file",
    "default_rejects_path",
    "import_list",
    "open_table",
]

_HOMES = {
    "ImportConflictError": "dialer.lists.importer",
    "ImportOptionError": "dialer.lists.importer",
    "ImportSummary": "dialer.lists.importer",
    "check_list_file": "dialer.lists.importer",
    "default_rejects_path": "dialer.lists.importer",
    "import_list": "dialer.lists.importer",
    "ListFileError": "dialer.lists.reader",
    "open_table": "dialer.lists.reader",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'dialer.lists' has no attribute {name!r}")
