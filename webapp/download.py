"""Download of the cumulative snapshot files, for experts who want the ROOT file itself.

Only files named like a snapshot (``Run<run>/<SYS>/<SYS>hists.<time>.root``)
and lying inside the data directory are served; traversal attempts are
refused with 400 before the file system is touched (see :mod:`webapp.paths`).
"""

from __future__ import annotations

from flask import Blueprint, Response, send_file

from webapp.context import resources
from webapp.http import json_error
from webapp.paths import UnsafePath, snapshot_file

bp = Blueprint("download", __name__)


@bp.route("/download/<path:relpath>")
def snapshot(relpath: str) -> Response:
    try:
        target = snapshot_file(resources().data_dir, relpath)
    except UnsafePath as error:
        return json_error(f"refused download path: {error}", 400)
    if target is None:
        return json_error(f"no snapshot file {relpath!r}", 404)
    return send_file(
        target,
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=target.name,
        conditional=True,
        max_age=0,
    )
