"""Running the web app: gunicorn in production, Flask's server with ``--dev``.

gunicorn runs in-process (``gunicorn.app.base.BaseApplication``) so that
``overwatch web`` needs no second configuration: the master process reads the
settings and the secret key, and each worker builds its own app after the fork
(``load()`` runs in the worker), so no ZODB connection crosses a fork.

A ``file://`` database belongs to one process (FileStorage locks its file), so
with one the server runs a single worker with the threads of all, and says so
(use ``zeo://`` for more workers). Its worker opens the storage at boot and
keeps it, so a second server or processing on the same file is refused at its
start. The master opens the storage once before serving, so a storage another
process holds is one clear error and exit code 2, not a 500 per request.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

from overwatch.config import Settings
from overwatch.store.db import open_db, single_process
from overwatch.store.layout import DataDir
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


def _share_request_metrics(settings: Settings, data_dir: str | None) -> None:
    """Request metrics summed over the workers (``webapp.metrics``): prometheus-client's
    multiprocess folder, one per port under the data directory's status folder, emptied
    at start (counts of a previous server are not this one's). Set before any worker
    imports prometheus_client, which reads it once."""
    folder = (
        DataDir(data_dir or settings.data.data_dir).status_dir / f"web-metrics-{settings.web.port}"
    )
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def serve(
    settings: Settings,
    *,
    data_dir: str | None = None,
    workers: int = 2,
    threads: int = 4,
    dev: bool = False,
    access_log: bool = False,
) -> int:
    """Serve until stopped (SIGTERM/SIGINT); returns an exit code.

    Raises DatabaseLocked (held by another process) or OSError when a one-process
    database cannot be opened here.
    """
    uri = settings.database.uri
    one_process = single_process(uri)
    if one_process:
        # Closed again at once: each worker opens its own after the fork. A storage
        # another process holds raises DatabaseLocked, a folder that cannot be made
        # OSError: the command says which and exits 2.
        open_db(uri).close()
        if workers > 1 and not dev:
            log.warning(
                "%s is a database for one process: serving with 1 worker x %d threads "
                "instead of %d workers x %d (use zeo:// for several workers)",
                uri,
                workers * threads,
                workers,
                threads,
            )
            threads, workers = workers * threads, 1
    secret_key = load_secret_key(settings.web.secret_key_file)
    if dev:
        from webapp.app import create_app

        app = create_app(settings, data_dir=data_dir, secret_key=secret_key)
        log.warning("Flask's development server: for one user only; omit --dev in production")
        app.run(host=settings.web.host, port=settings.web.port, threaded=True, use_reloader=False)
        return 0

    from gunicorn.app.base import BaseApplication

    options = gunicorn_options(settings, workers=workers, threads=threads, access_log=access_log)
    _share_request_metrics(settings, data_dir)

    class OverwatchServer(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                if value is not None and key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            from webapp.app import create_app
            from webapp.context import EXTENSION

            app = create_app(settings, data_dir=data_dir, secret_key=secret_key)
            if one_process:
                app.extensions[EXTENSION].db  # noqa: B018 - hold the file's lock from the start
            return app

    log.info(
        "serving on http://%s:%d with %d worker(s) x %d threads",
        settings.web.host,
        settings.web.port,
        workers,
        threads,
    )
    OverwatchServer().run()
    return 0
