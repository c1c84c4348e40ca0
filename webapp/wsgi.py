"""WSGI entry point for an external server: ``gunicorn 'webapp.wsgi:app'``.

Settings come from the usual layers (``config/overwatch.yaml``,
``~/.config/overwatch/overwatch.yaml``, ``./overwatch.yaml``), the file named
by ``OVERWATCH_CONFIG`` if set, and environment variables such as
``OVERWATCH_DATABASE__URI=zeo://127.0.0.1:8100`` and
``OVERWATCH_DATA__DATA_DIR=/srv/overwatch/data``. Building the app opens
nothing: each gunicorn worker opens the database on its first request.
"""

from __future__ import annotations

import os

from overwatch.config import load_settings
from webapp.app import create_app

app = create_app(load_settings(os.environ.get("OVERWATCH_CONFIG") or None))
