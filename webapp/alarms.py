"""Alarms: the list a shifter cannot miss, and acknowledging them.

``GET  /api/alarms?run=&subsystem=&quality=&active=&acknowledged=&limit=``
    alarms newest first, as ``{"alarms": [...], "filters": {...}}``; each alarm
    has its time (unix s, when it opened), run, subsystem, check, histogram,
    trend (or null), group, quality, message (of the latest Bad result), its
    episode's occurrences and first_seen/last_seen (slice end times, unix s),
    active/cleared_at and acknowledged_by/_at.
``POST /api/alarms/<id>/ack``
    acknowledge (the first acknowledgement counts); answers the alarm. A
    signed-in browser sends its CSRF token in the ``X-CSRF-Token`` header, a
    script authenticates with its API token (``Authorization: Bearer``).
``GET  /alarms?...``  the alarms page, with the same filters in the URL.
``POST /alarms/<id>/ack``  the page's acknowledge form (hidden CSRF field), then
    back to the page it came from.

Filters: ``run`` a run number, ``subsystem`` a subsystem name, ``quality`` one
of Good/Medium/Bad/Null (any case), ``active`` and ``acknowledged`` 1/0
(true/false), ``limit`` 1..5000 (500 by default). A bad value is a 400 that
names the parameter; an unknown alarm id is a 404. Acknowledging is the only
write the web app makes besides user management: it runs in its own
transaction (``overwatch.store.db.transact``, retried on conflicts) because
the per-request connection only reads.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, g, redirect, render_template, request, url_for

from overwatch import names
from overwatch.quality import Quality
from overwatch.store.db import overwatch_root, transact
from processing import acknowledge, alarm_to_dict, list_alarms
from webapp import push, queries
from webapp.context import overwatch, resources
from webapp.http import json_error, json_response, safe_next
from webapp.paths import check_subsystem, quote_path

log = logging.getLogger(__name__)

bp = Blueprint("alarms", __name__)

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
QUALITIES = tuple(q.value for q in Quality)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class UnknownAlarm(LookupError):
    """An alarm id the database does not hold."""


def _flag(name: str, text: str | None) -> bool | None:
    if text in (None, ""):
        return None
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise queries.BadRequest(f"{name} must be 1 or 0 (true or false), got {text!r}")


def parse_filters(args: Any) -> dict[str, Any]:
    """Validated filters from a query string; raises ``queries.BadRequest`` naming the field."""
    filters: dict[str, Any] = {}
    run = args.get("run", "").strip()
    if run:
        try:
            filters["run"] = names.parse_run(run)
        except names.InvalidName:
            raise queries.BadRequest(f"run must be a run number, got {run!r}") from None
    subsystem = args.get("subsystem", "").strip()
    if subsystem:
        if not check_subsystem(subsystem):
            raise queries.BadRequest(f"subsystem must be a subsystem name, got {subsystem!r}")
        filters["subsystem"] = subsystem
    quality = args.get("quality", "").strip()
    if quality:
        try:
            filters["quality"] = Quality.parse(quality).value
        except ValueError as error:
            raise queries.BadRequest(
                f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}"
            ) from error
    for name in ("active", "acknowledged"):
        flag = _flag(name, args.get(name))
        if flag is not None:
            filters[name] = flag
    limit = args.get("limit", "").strip()
    if limit:
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
            raise queries.BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        filters["limit"] = int(limit)
    return filters


def histogram_page_url(alarm: dict[str, Any]) -> str:
    base = url_for(
        "pages.histogram_page", run=alarm["run"], subsystem=alarm["subsystem"], path="_"
    )[:-1]
    return base + quote_path(alarm["histogram"])


def find_alarms(filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Alarms matching ``filters`` (see :func:`parse_filters`), newest first, with links."""
    query = {**filters, "limit": filters.get("limit", DEFAULT_LIMIT)}
    found = list_alarms(overwatch(), **query)
    for alarm in found:
        alarm["histogram_url"] = histogram_page_url(alarm) if alarm["histogram"] else None
        alarm["ack_url"] = url_for("alarms.api_ack", alarm_id=alarm["id"])
    return found


def acknowledge_alarm(alarm_id: int, user: str) -> dict[str, Any]:
    """Acknowledge in its own transaction; raises UnknownAlarm for an id not stored."""

    def work(root: dict) -> dict[str, Any]:
        try:
            return alarm_to_dict(acknowledge(overwatch_root(root), alarm_id, user))
        except LookupError as error:
            raise UnknownAlarm(f"alarm {alarm_id} not found") from error

    result = transact(resources().db, work, note=f"alarm {alarm_id} acknowledged by {user}")
    log.info("alarm #%d acknowledged by %s (web)", alarm_id, user)
    push.announce("alarm", action="acknowledged", alarm=result)
    return result


@bp.route("/api/alarms")
def api_list() -> Response:
    try:
        filters = parse_filters(request.args)
    except queries.BadRequest as error:
        return json_error(str(error), 400)
    alarms = find_alarms(filters)
    return json_response({"alarms": alarms, "count": len(alarms), "filters": filters})


@bp.route("/api/alarms/<int:alarm_id>/ack", methods=["POST"])
def api_ack(alarm_id: int) -> Response:
    try:
        alarm = acknowledge_alarm(alarm_id, g.user)
    except UnknownAlarm as error:
        return json_error(str(error), 404)
    alarm["acknowledged_now"] = alarm["acknowledged_by"] == g.user
    return json_response(alarm)


@bp.route("/alarms")
def page() -> Response:
    filters = parse_filters(request.args)  # BadRequest -> the 400 error page
    alarms = find_alarms(filters)
    shown = {k: v for k, v in request.args.items() if k in _PAGE_KEYS and v != ""}
    here = url_for("alarms.page") + ("?" + urlencode(shown) if shown else "")
    return Response(
        render_template(
            "alarms.html",
            alarms=alarms,
            filters=filters,
            args=shown,
            here=here,
            qualities=QUALITIES,
            limit=filters.get("limit", DEFAULT_LIMIT),
        )
    )


_PAGE_KEYS = ("run", "subsystem", "quality", "active", "acknowledged", "limit")


@bp.route("/alarms/<int:alarm_id>/ack", methods=["POST"])
def form_ack(alarm_id: int) -> Response:
    try:
        acknowledge_alarm(alarm_id, g.user)
    except UnknownAlarm as error:
        raise queries.NotFound(str(error)) from error
    target = safe_next(request.form.get("next"))
    if target == url_for("pages.runs"):
        target = url_for("alarms.page")
    return redirect(target, code=303)
