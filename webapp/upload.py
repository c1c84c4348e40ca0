"""``POST /api/upload``: DQM agents send ROOT files over HTTP, stored like received snapshots.

Request: an API token (``Authorization: Bearer <token>``) of a user allowed to
upload (``overwatch users allow-upload NAME``, or ``users add NAME --upload``).
Fields, each as a header or as a field of a multipart form:

====================  ==========================  ===========================================
field                 header                      value
====================  ==========================  ===========================================
``run``               ``X-Overwatch-Run``         1 to 2**31 - 1, or 0 ("no run": stored never)
``subsystem``         ``X-Overwatch-Subsystem``   e.g. ``EMC``
``timestamp``         ``X-Overwatch-Timestamp``   unix seconds or ISO 8601 with a zone;
                                                  optional, default the receipt time
``mode``              ``X-Overwatch-Mode``        optional, default ``B``
====================  ==========================  ===========================================

The ROOT file is the raw body (``application/octet-stream``, or any type but
a form) or the file field ``file`` of a ``multipart/form-data`` form. A field
given both ways must agree.

What happens to it is what happens to a snapshot the ZMQ receiver fetched:
the same :class:`receivers.intake.Intake` (validation, quarantine, unique
ordered name, atomic write, duplicate rule, notice to processing at
``receiver.notify_address``), one per subsystem in each web process, writing
into the web's data directory.

Answers (errors are ``{"error": message}``, through ``webapp.http.json_error``):

* 201 ``{"stored": "Run<N>/<SYS>/<file>", "status": "stored"}``;
* 200 ``{"status": "duplicate"}`` (the same bytes as this process's previous
  upload for the run and subsystem), 200 ``{"status": "run_zero"}``;
* 400 a missing or bad field (named), an empty file, a timestamp too far in
  the future (``receiver.max_clock_skew``), or bytes that are not a ROOT file
  listing objects (then quarantined with the reason, as the ZMQ receiver does);
* 401 no or a wrong token; 403 a user not allowed to upload, or a browser
  session (uploads take tokens only: a session's request would need the CSRF
  token too, and no page uploads);
* 413 larger than ``receiver.max_message_bytes``: said from ``Content-Length``
  before the body is read, or while reading a body without one;
* 415 a URL-encoded form (it cannot carry a file);
* 507 the snapshot could not be written (disk full, or the error says why):
  nothing of it was stored, nothing stored before is touched; send it again
  later (``Retry-After``). A web process never holds uploads in memory.

Why the body is read whole: the intake validates and writes bytes, as the
ZMQ receiver does, so an upload costs up to ``max_message_bytes`` of memory
while it is handled.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.datastructures import MultiDict

from overwatch.config import ReceiverSettings
from overwatch.lru import LRU
from receivers.intake import (
    Check,
    FieldError,
    Intake,
    Outcome,
    Status,
    parse_instant,
    snapshot_header,
)
from receivers.notify import Notifier
from receivers.spool import FileSystem
from webapp.context import EXTENSION, overwatch
from webapp.http import json_error

log = logging.getLogger(__name__)

bp = Blueprint("upload", __name__)

#: Where the app keeps its :class:`Uploads`.
UPLOADS = "overwatch.upload"
#: The header of each field.
HEADERS = {
    "run": "X-Overwatch-Run",
    "subsystem": "X-Overwatch-Subsystem",
    "timestamp": "X-Overwatch-Timestamp",
    "mode": "X-Overwatch-Mode",
}
FILE_FIELD = "file"
DEFAULT_MODE = "B"
#: Room for a multipart form's boundaries and small fields around the file.
FORM_OVERHEAD = 65_536
#: Bytes read from the body at a time.
CHUNK = 1 << 20
#: Subsystems with an intake in one process; the least recently used beyond are
#: forgotten (their duplicate memory with them), which bounds what odd names cost.
MAX_INTAKES = 256
#: Seconds a client is told to wait after the disk refused an upload.
RETRY_AFTER = 30


class UploadError(Exception):
    """A refused upload: ``status`` and the message of its JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _SharedNotifier(Notifier):
    """One notice socket for every intake of a process, used by one thread at a time."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self._send_lock = threading.Lock()

    def notify(self, run: int, subsystem: str, path: str) -> bool:
        with self._send_lock:
            return super().notify(run, subsystem, path)


class Uploads:
    """The intakes of one web process, one per subsystem, made at first use (after a fork)."""

    def __init__(
        self, settings: ReceiverSettings, data_dir: str | Path, fs: FileSystem | None = None
    ) -> None:
        self.settings = settings
        self.data_dir = Path(data_dir)
        self.fs = fs  # tests inject a failing disk here
        self._intakes: LRU[str, Intake] = LRU(MAX_INTAKES)
        self._notifier: Notifier | None = None
        self._lock = threading.Lock()

    def intake(self, subsystem: str) -> Intake:
        found = self._intakes.get(subsystem)
        if found is not None:
            return found
        with self._lock:
            found = self._intakes.get(subsystem)
            if found is None:
                if self._notifier is None:
                    self._notifier = _SharedNotifier(self.settings.notify_address)
                found = Intake(
                    self.settings, self.data_dir, subsystem, source="HTTP upload",
                    hold=False, notifier=self._notifier, fs=self.fs,
                )  # fmt: skip
                self._intakes.put(subsystem, found)
        return found


def uploads_of(app: Flask) -> Uploads:
    return app.extensions[UPLOADS]


@bp.record_once
def _setup(state) -> None:
    resources = state.app.extensions[EXTENSION]
    state.app.extensions[UPLOADS] = Uploads(resources.settings.receiver, resources.data_dir)


# --------------------------------------------------------------------------- the route


@bp.route("/api/upload", methods=["POST"])
def upload() -> Response:
    """Store a ROOT file as a snapshot of a run (API token of a user allowed to upload).

    Fields as headers (X-Overwatch-Run, -Subsystem, -Timestamp, -Mode) or
    multipart form fields; the file as the raw body or the form's file field.
    """
    try:
        return _upload()
    except UploadError as error:
        response = json_error(str(error), error.status)
        if error.status == 507:
            response.headers["Retry-After"] = str(RETRY_AFTER)
        return response


def _upload() -> Response:
    received = time.time()
    _check_allowed()
    uploads = uploads_of(current_app)
    limit = uploads.settings.max_message_bytes
    multipart = request.mimetype == "multipart/form-data"
    if request.mimetype == "application/x-www-form-urlencoded":
        raise UploadError(
            415, "a URL-encoded form cannot carry a file: send the ROOT file as the raw body "
            "(application/octet-stream) or as the field 'file' of a multipart/form-data form",
        )  # fmt: skip
    body_limit = limit + FORM_OVERHEAD if multipart else limit
    if request.content_length is not None and request.content_length > body_limit:
        raise UploadError(413, _too_big(request.content_length, limit))  # the body is never read
    request.max_content_length = body_limit  # also bounds a body without Content-Length
    form = request.form if multipart else None  # parsing a form reads the body
    header = _header(form, received)
    payload = _file(form, limit) if multipart else _raw_body(limit)
    intake = uploads.intake(header.subsystem)
    intake.housekeeping()
    intake.arrived(received)
    who = f"HTTP upload by {g.user} from {request.remote_addr or 'unknown'}"
    return _answer(intake.accept(header, payload, received=received, source=who))


def _check_allowed() -> None:
    if not g.get("via_token"):
        raise UploadError(
            403, "uploads take an API token (Authorization: Bearer <token>) of a user allowed "
            "to upload; a signed-in browser session cannot upload",
        )  # fmt: skip
    user = overwatch().users.get(g.user)  # read now: a revoked permission counts at once
    if user is None or not user.can_upload:
        raise UploadError(
            403, f"user {g.user!r} may not upload snapshots; an administrator can allow it "
            f"with 'overwatch users allow-upload {g.user}'",
        )  # fmt: skip


def _too_big(size: int, limit: int) -> str:
    return f"the upload is {size} bytes, more than receiver.max_message_bytes ({limit})"


def _field(name: str, form: MultiDict | None) -> str | None:
    """A field from its header or the form (empty counts as absent); 400 if they disagree."""
    from_header = request.headers.get(HEADERS[name], "").strip() or None
    from_form = (form.get(name, "") if form is not None else "").strip() or None
    if from_header is not None and from_form is not None and from_header != from_form:
        raise UploadError(
            400, f"{name}: the header {HEADERS[name]} says {from_header[:40]!r} and the form "
            f"field says {from_form[:40]!r}; send one",
        )  # fmt: skip
    return from_header if from_header is not None else from_form


def _header(form: MultiDict | None, received: float):
    where = "the header {} or the form field {}" if form is not None else "the header {}"
    values = {}
    for name in ("run", "subsystem"):
        value = _field(name, form)
        if value is None:
            raise UploadError(400, f"{name}: missing; send {where.format(HEADERS[name], name)}")
        values[name] = value
    try:
        stamp = _field("timestamp", form)
        return snapshot_header(
            values["run"],
            values["subsystem"],
            mode=_field("mode", form) or DEFAULT_MODE,
            timestamp=received if stamp is None else parse_instant(stamp),
        )
    except FieldError as error:
        raise UploadError(400, f"bad field {error}") from None


def _raw_body(limit: int) -> bytes:
    blocks, total = [], 0
    stream = request.stream
    while block := stream.read(CHUNK):
        total += len(block)
        if total > limit:
            raise UploadError(413, _too_big(total, limit) + " (and more was coming)")
        blocks.append(block)
    return b"".join(blocks)


def _file(form: MultiDict, limit: int) -> bytes:
    storage = request.files.get(FILE_FIELD)
    if storage is None:
        also = " (it came as a text field, not as a file)" if FILE_FIELD in form else ""
        raise UploadError(400, f"the multipart form has no file field {FILE_FIELD!r}{also}")
    payload = storage.read(limit + 1)
    if len(payload) > limit:
        raise UploadError(413, _too_big(len(payload), limit))
    return payload


def _json(data: dict[str, str | None], status: int) -> Response:
    """An answer to a POST: never cached, no ETag (nothing to revalidate)."""
    response = Response(json.dumps(data), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _answer(outcome: Outcome) -> Response:
    status = outcome.status
    if status == Status.STORED:
        return _json({"stored": outcome.path, "status": "stored"}, 201)
    if status in (Status.DUPLICATE, Status.RUN_ZERO):
        return _json({"status": str(status)}, 200)
    if status == Status.EMPTY:
        raise UploadError(400, "the ROOT file is empty")
    if status == Status.QUARANTINED:
        kept = f"; kept in quarantine as {outcome.path}" if outcome.path else ""
        if outcome.check == Check.SIZE:
            raise UploadError(413, f"{outcome.reason}{kept}")
        if outcome.check == Check.CLOCK:
            raise UploadError(400, f"bad field timestamp: {outcome.reason}{kept}")
        raise UploadError(400, f"not a ROOT file listing objects: {outcome.reason}{kept}")
    if status == Status.DROPPED:
        raise UploadError(
            507, f"cannot store the snapshot ({outcome.reason}); nothing of it was stored: "
            f"send it again in a while",
        )  # fmt: skip
    raise RuntimeError(f"an upload intake answered {status}")  # it holds nothing, ignores nothing
