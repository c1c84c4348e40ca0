"""Running the web app: gunicorn in production, Flask's server with ``--dev``.

gunicorn runs in-process (``gunicorn.app.base.BaseApplication``) so that
``overwatch web`` needs no second configuration: the master process reads the
settings and the secret key, and each worker builds its own app after the fork
(``load()`` runs in the worker), so no ZODB connection crosses a fork.
"""

from __future__ import annotations

import logging
from typing import Any

from overwatch.config import Settings
from webapp.security import load_secret_key

log = logging.getLogger(__name__)


def gunicorn_options(
    settings: Settings, *, workers: int, threads: int, access_log: bool
) -> dict[str, Any]:
    return {
        "bind": f"{settings.web.host}:{settings.web.port}",
        "workers": workers,
        # Live event streams each hold a thread while they wait (webapp.push): they get
        # their own on top of those answering ordinary requests.
        "threads": threads + settings.web.max_streams,
        "worker_class": "gthread",
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "proc_name": "overwatch-web",
        # gunicorn's control socket lives in the home directory by default: two
        # servers on one machine (tests, a second deployment) would fight over it.
        "control_socket_disable": True,
    }


def serve(
    settings: Settings,
    *,
    data_dir: str | None = None,
    workers: int = 2,
    threads: int = 4,
    dev: bool = False,
    access_log: bool = False,
) -> int:
    """Serve until stopped (SIGTERM/SIGINT); returns an exit code."""
    secret_key = load_secret_key(settings.web.secret_key_file)
    if dev:
        from webapp.app import create_app

        app = create_app(settings, data_dir=data_dir, secret_key=secret_key)
        log.warning("Flask's development server: for one user only; omit --dev in production")
        app.run(host=settings.web.host, port=settings.web.port, threaded=True, use_reloader=False)
        return 0

    from gunicorn.app.base import BaseApplication

    options = gunicorn_options(settings, workers=workers, threads=threads, access_log=access_log)

    class OverwatchServer(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None and key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            from webapp.app import create_app

            return create_app(settings, data_dir=data_dir, secret_key=secret_key)

    log.info(
        "serving on http://%s:%d with %d workers x %d threads",
        settings.web.host,
        settings.web.port,
        workers,
        threads,
    )
    OverwatchServer().run()
    return 0
