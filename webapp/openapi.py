"""``GET /api/openapi.json``: an OpenAPI 3.0 description of the JSON API.

The description is built from the app's URL map, so a new ``/api`` route is
described the moment it exists: its path, methods and path parameters come
from the rule (converters give the types), its summary from the view
function's docstring or its blueprint's name. What a rule cannot say lives in
the small tables below, in this one place: the schema of each path
parameter by name, the query parameters and request bodies of each endpoint,
and the status codes beyond the ones every route shares. A test checks that
every ``/api`` route is described and that no table names a route that is
gone (``tests/unit/test_openapi.py``); the fuzz test
(``tests/integration/test_fuzz_api.py``) runs schemathesis on it.

The description is served like every other ``/api`` answer: to a signed-in
user or an API token. It holds no data, but a public route is a decision of
``webapp.auth`` alone (its ``PUBLIC_ENDPOINTS``), and whoever can call the API
has a token already. Limits are read from the modules that enforce them,
never repeated here.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app
from werkzeug.routing import Rule

import processing
from overwatch import names
from overwatch.quality import Quality
from webapp import alarms, overview, queries, reference, slice_page, upload
from webapp.http import json_response
from webapp.paths import MAX_PATH_LENGTH

bp = Blueprint("openapi", __name__)

API_PREFIX = "/api/"
#: Routes outside ``/api`` that belong to the JSON API all the same.
EXTRA_PATHS = ("/healthz",)
#: Endpoints anyone may call (the same as ``webapp.auth.PUBLIC_ENDPOINTS`` within the API).
PUBLIC = frozenset({"api.healthz"})

_STRING = {"type": "string"}
_FLAG = {"type": "string", "description": "1/0, true/false, yes/no or on/off"}
_VIEW = {"type": "string", "enum": list(processing.VIEW_NAMES), "default": "cumulative"}

#: Path parameters by name (Flask's converters say no more than integer or string).
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "run": {"type": "integer", "minimum": 1, "maximum": names.MAX_RUN},
    "subsystem": {"type": "string", "pattern": f"^{names.SUBSYSTEM_PATTERN.pattern}$"},
    "path": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_PATH_LENGTH,
        "description": "histogram path; each segment percent-encoded, '/' between them",
    },
    "slice_id": {
        "type": "string",
        "pattern": processing.SLICE_ID.pattern,
        "description": "an on-demand slice's id",
    },
    "alarm_id": {"type": "integer", "minimum": 0},
    "name": {"type": "string", "description": "a layout's name (its file name)"},
}


def _query(name: str, schema: dict[str, Any], description: str = "", **extra: Any) -> dict:
    parameter = {"name": name, "in": "query", "schema": schema, **extra}
    if description:
        parameter["description"] = description
    return parameter


_SLICE = _query(
    "slice",
    {"type": "string", "default": "cumulative"},
    "cumulative (the whole run), latest, or an on-demand slice's link or id",
)
#: Plugin options (``scale_by_events=true``): any other query parameter of these routes.
_OPTIONS = _query(
    "options",
    {"type": "object", "additionalProperties": {"type": "string"}},
    "plugin options as their own query parameters (e.g. scale_by_events=true)",
    style="form",
    explode=True,
)
_VIEWED = [_SLICE, _OPTIONS]

_TIMESTAMP = {"type": "string", "description": "unix seconds, or ISO 8601 with a zone"}
#: The fields of an upload: (name, schema, text); each a header or a multipart form field.
_UPLOAD_FIELDS = (
    ("run", {"type": "integer", "minimum": 0, "maximum": names.MAX_RUN}, "0: no run, stored never"),
    ("subsystem", PATH_PARAMETERS["subsystem"], "required, as a header or a form field"),
    ("timestamp", _TIMESTAMP, "when the content was taken; default: the receipt time"),
    ("mode", {"type": "string", "pattern": f"^{names.MODE_PATTERN.pattern}$"}, "default B"),
)

#: Query parameters by endpoint.
QUERY_PARAMETERS: dict[str, list[dict[str, Any]]] = {
    "api.runs": [
        _query("page", {"type": "integer", "minimum": 1, "default": 1}),
        _query(
            "per_page",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": queries.MAX_PER_PAGE,
                "default": queries.DEFAULT_PER_PAGE,
            },
        ),  # fmt: skip
    ],
    "api.view": _VIEWED,
    "api.histograms": _VIEWED,
    "api.histogram": _VIEWED,
    "plugin_view.plugin_summary": _VIEWED,
    "plugin_view.stack": _VIEWED,
    "plugin_view.display": _VIEWED,
    "slices.collection": [_SLICE],
    "reference.compare": [
        _query("ref", _STRING, "reference run number, or none; default: the configured one"),
        _query("test", {"type": "string", "maxLength": reference.MAX_PARAMETER_LENGTH}),
        _query("threshold", {"type": "number", "minimum": 0, "maximum": 1}),
        _query("sort", {"type": "string", "enum": list(processing.SORT_ORDERS)}),
        _query("slice", _VIEW),
    ],
    "reference.overlay": [
        _query("ref", _STRING, "reference run number; default: the configured one"),
        _query("slice", _VIEW),
    ],
    "trends.api_graph": [_query("name", _STRING, "trend name, e.g. mean", required=True)],
    "trends.api_history": [
        _query("subsystem", PATH_PARAMETERS["subsystem"], required=True),
        _query("path", PATH_PARAMETERS["path"], required=True),
        _query("name", _STRING, required=True),
        _query("runs", _STRING, "runs and ranges like 7,9,12-15; default every run"),
        _query("format", {"type": "string", "enum": ["graph", "points"], "default": "graph"}),
    ],
    "alarms.api_list": [
        _query("run", PATH_PARAMETERS["run"]),
        _query("subsystem", PATH_PARAMETERS["subsystem"]),
        _query("quality", {"type": "string", "enum": [q.value for q in Quality]}),
        _query("active", _FLAG),
        _query("acknowledged", _FLAG),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": alarms.MAX_LIMIT}),
    ],
    "layouts.api_layout": [
        _query("tab", _STRING),
        _query("run", PATH_PARAMETERS["run"]),
        _query("slice", _VIEW),
    ],
    "overview.api": [
        _query(
            "runs",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": overview.MAX_RUNS,
                "default": overview.DEFAULT_RUNS,
            },
        ),  # fmt: skip
    ],
    "events.stream": [
        _query("last_event_id", {"type": "integer"}, "resume after this event"),
        {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer"}},
    ],
    "upload.upload": [
        {"name": upload.HEADERS[field], "in": "header", "schema": schema, "description": text}
        for field, schema, text in _UPLOAD_FIELDS
    ],
}

_SLICE_REQUEST = {
    "type": "object",
    "properties": {
        "start": {"description": "run-relative minutes, a UTC time, or empty (run start)"},
        "end": {"description": "run-relative minutes, a UTC time, or empty (latest)"},
        "options": {"type": "object", "additionalProperties": True},
        "preset": {"type": "string", "enum": [name for name, _ in slice_page.PRESETS]},
        "follow": {"type": "boolean"},
        "group": {"type": "string", "description": "the run page's group, kept in the permalink"},
    },
    "additionalProperties": False,
}

_UPLOAD_FORM = {
    "type": "object",
    "properties": {
        upload.FILE_FIELD: {"type": "string", "format": "binary"},
        **{field: schema for field, schema, _ in _UPLOAD_FIELDS},
    },
    "required": [upload.FILE_FIELD],
}

#: Request bodies by endpoint.
REQUEST_BODIES: dict[str, dict[str, Any]] = {
    "upload.upload": {
        "required": True,
        "description": "the ROOT file, as the raw body or the file field of a multipart form",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": _UPLOAD_FORM},
        },
    },
    "slices.create": {
        "required": False,
        "content": {
            "application/json": {"schema": _SLICE_REQUEST},
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            },
        },
    },
}

_ERROR = {"$ref": "#/components/schemas/Error"}
STATUS_TEXT = {
    "200": "the answer",
    "201": "created",
    "304": "not modified (If-None-Match matched the ETag)",
    "400": "a malformed parameter or body; the error names it",
    "401": "authentication required: a session or an API token",
    "403": "not allowed (uploads take an API token of a user allowed to upload)",
    "404": "an unknown run, subsystem, histogram, slice, alarm, layout or trend",
    "409": "the histograms cannot be overlaid (different binning)",
    "413": "the request body is too large",
    "415": "a body of a type the route does not take",
    "422": "the layout file is broken; the error says where",
    "503": "the database is unreachable, or too many live streams",
    "507": "the snapshot could not be written (disk full); nothing was stored, send it again",
}
#: Codes beyond those every route has, by endpoint.
EXTRA_STATUS: dict[str, tuple[str, ...]] = {
    "slices.create": ("201", "413"),
    "reference.overlay": ("409",),
    "layouts.api_layout": ("422",),
    "upload.upload": ("200", "201", "403", "413", "415", "507"),
}
#: Answers that are not JSON.
MEDIA_TYPES = {"events.stream": "text/event-stream"}


def api_rules(app: Flask) -> list[Rule]:
    """The rules the description covers: every ``/api`` route and :data:`EXTRA_PATHS`."""
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(API_PREFIX) or rule.rule in EXTRA_PATHS
    ]
    return sorted(rules, key=lambda rule: rule.rule)


#: A variable of a Flask rule: ``<name>``, ``<int:name>``, ``<int(signed=True):name>``.
_VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_CONVERTED = {"int": {"type": "integer"}, "float": {"type": "number"}}


def openapi_path(rule: Rule) -> str:
    """``/api/runs/<int:run>/<path:path>`` -> ``/api/runs/{run}/{path}``."""
    return _VARIABLE.sub(lambda match: "{" + match["name"] + "}", rule.rule)


def _path_parameters(rule: Rule) -> list[dict[str, Any]]:
    """The rule's variables in URL order, typed by :data:`PATH_PARAMETERS` or their converter."""
    found = []
    for match in _VARIABLE.finditer(rule.rule):
        name = match["name"]
        schema = PATH_PARAMETERS.get(name) or _CONVERTED.get(match["converter"] or "", _STRING)
        found.append({"name": name, "in": "path", "required": True, "schema": schema})
    return found


def _summary(app: Flask, endpoint: str) -> str:
    doc = inspect.getdoc(app.view_functions[endpoint]) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ") or endpoint.replace("_", " ")


def _responses(endpoint: str, method: str) -> dict[str, Any]:
    codes = ["400", "404", "503", *EXTRA_STATUS.get(endpoint, ())]
    codes.append("201" if "201" in codes else "200")
    if method == "GET":
        codes.append("304")
    if endpoint not in PUBLIC:
        codes.append("401")
    media = MEDIA_TYPES.get(endpoint, "application/json")
    answers: dict[str, Any] = {}
    for code in sorted(set(codes)):
        answer: dict[str, Any] = {"description": STATUS_TEXT[code]}
        if code in ("200", "201"):
            answer["content"] = {media: {"schema": {}}}
        elif code != "304":
            answer["content"] = {"application/json": {"schema": _ERROR}}
        answers[code] = answer
    return answers


def _operation(app: Flask, rule: Rule, method: str) -> dict[str, Any]:
    endpoint = rule.endpoint
    operation: dict[str, Any] = {
        "operationId": f"{endpoint}.{method.lower()}",
        "summary": _summary(app, endpoint),
        "tags": [endpoint.split(".", 1)[0]],
        "parameters": [
            *_path_parameters(rule),
            *QUERY_PARAMETERS.get(endpoint, ()),
        ],
        "responses": _responses(endpoint, method),
    }
    if endpoint in REQUEST_BODIES:
        operation["requestBody"] = REQUEST_BODIES[endpoint]
    if endpoint in PUBLIC:
        operation["security"] = []
    return operation


def describe(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s JSON API."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in api_rules(app):
        item = paths.setdefault(openapi_path(rule), {})
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            item[method.lower()] = _operation(app, rule, method)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Overwatch API",
            "version": "1",
            "description": (
                "Runs, slices, histograms (ROOT TBufferJSON), trends, alarms and status of "
                'an Overwatch server. Errors are JSON {"error": message}.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": _STRING},
                    "required": ["error"],
                }
            },
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer", "description": "an API token"},
                "session": {"type": "apiKey", "in": "cookie", "name": "overwatch_session"},
            },
        },
        "security": [{"token": []}, {"session": []}],
    }


@bp.route("/api/openapi.json")
def spec() -> Response:
    """This description of the JSON API."""
    return json_response(describe(current_app))
