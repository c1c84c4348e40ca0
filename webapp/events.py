"""``GET /api/events``: the live-event stream of every page (server-sent events).

``text/event-stream``, for a signed-in session or an API token like every
endpoint. Each event is ``id: N`` / ``event: TYPE`` / ``data: JSON`` (the
event document of :mod:`overwatch.events`). The stream starts with a
``hello`` event (the newest id, every receiver's state, the server time);
a page that reconnects sends ``Last-Event-ID`` (browsers do it by themselves)
and gets every buffered event after it, or a ``resync`` event when they are
no longer buffered (the page then reloads its content). A comment line every
:data:`KEEPALIVE_SECONDS` keeps proxies from closing an idle stream.

The hub (:mod:`webapp.push`) is per process; this module only turns its
events into text. A stream reads nothing from the database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request

from webapp.http import json_error
from webapp.push import hub

bp = Blueprint("events", __name__)

KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000  # how soon a browser reconnects after the stream broke
#: Seconds a stream lives before the server ends it (the browser reconnects at once);
#: bounds what a forgotten tab holds and lets workers restart cleanly.
MAX_STREAM_SECONDS = 3600.0


def sse(event: dict[str, Any]) -> str:
    """One event in the text/event-stream format."""
    data = json.dumps(event, separators=(",", ":"), default=str)
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {data}\n\n"


@bp.route("/api/events")
def stream() -> Response:
    events = hub()
    if not events.open_stream():
        response = json_error(
            f"this server holds {events.max_streams} live streams already; poll instead", 503
        )
        response.headers["Retry-After"] = "30"
        return response
    last = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or ""
    try:
        last_id = int(last) if last else 0
    except ValueError:
        last_id = 0

    def generate() -> Iterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n\n"
            hello = {
                "id": events.last_id(),
                "type": "hello",
                "time": time.time(),
                "receivers": events.receivers(),
            }
            backlog = events.events_after(last_id) if last_id else []
            if backlog is None:
                yield sse({**hello, "type": "resync"})
                backlog = []
            else:
                yield sse(hello) if not last_id else ""
            seen = max([last_id, hello["id"], *(e["id"] for e in backlog)])
            for event in backlog:
                yield sse(event)
            ends = time.monotonic() + MAX_STREAM_SECONDS
            while time.monotonic() < ends:
                fresh = events.wait(seen, KEEPALIVE_SECONDS)
                if not fresh:
                    yield ": keepalive\n\n"
                    continue
                for event in fresh:
                    yield sse(event)
                seen = fresh[-1]["id"]
        finally:
            events.close_stream()

    response = Response(generate(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer it
    return response
