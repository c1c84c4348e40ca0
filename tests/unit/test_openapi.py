"""The OpenAPI description at /api/openapi.json: complete, valid, served like the API."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from flask import Flask

from tests.unit.test_web_support import add_user, login, make_app
from webapp import openapi, users


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    app, db = make_app(tmp_path)
    add_user(db, "alice")
    return app


def _document(app: Flask) -> dict:
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_every_api_route_and_method_is_described_with_its_path_parameters(app: Flask) -> None:
    paths = _document(app)["paths"]
    described = 0
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/") or rule.rule == "/healthz"):
            continue
        item = paths.get(openapi.openapi_path(rule))
        assert item is not None, f"{rule.rule} is not described"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = item.get(method.lower())
            assert operation is not None, f"{method} {rule.rule} is not described"
            in_path = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert in_path == set(rule.arguments), rule.rule
            described += 1
    assert described >= 27  # every /api route of today, /healthz and the description itself
    assert set(paths) == {openapi.openapi_path(rule) for rule in openapi.api_rules(app)}


def test_the_tables_name_only_routes_that_exist(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in openapi.api_rules(app)}
    for table in (
        openapi.QUERY_PARAMETERS,
        openapi.REQUEST_BODIES,
        openapi.EXTRA_STATUS,
        openapi.MEDIA_TYPES,
    ):
        assert set(table) <= endpoints, set(table) - endpoints
    assert openapi.PUBLIC <= endpoints


def test_the_document_is_valid_openapi_and_loads_in_schemathesis(app: Flask) -> None:
    document = _document(app)
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()  # the OpenAPI 3.0 meta-schema
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {operation.label for operation in operations}
    assert "GET /api/runs/{run}/{subsystem}/histograms/{path}" in labels
    assert "POST /api/runs/{run}/{subsystem}/slices" in labels
    assert len(operations) == sum(len(item) for item in document["paths"].values())


def test_parameters_and_status_codes(app: Flask) -> None:
    paths = _document(app)["paths"]
    histogram = paths["/api/runs/{run}/{subsystem}/histograms/{path}"]["get"]
    by_name = {p["name"]: p for p in histogram["parameters"]}
    assert by_name["run"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    assert by_name["subsystem"]["schema"]["pattern"] == "^[A-Za-z0-9]{1,32}$"
    assert by_name["slice"]["in"] == "query"
    assert by_name["options"]["style"] == "form" and by_name["options"]["explode"] is True
    assert set(histogram["responses"]) == {"200", "304", "400", "401", "404", "503"}
    create = paths["/api/runs/{run}/{subsystem}/slices"]["post"]
    assert {"201", "400", "401", "404", "413", "503"} <= set(create["responses"])
    assert "200" not in create["responses"] and "304" not in create["responses"]
    assert "application/json" in create["requestBody"]["content"]
    runs = {p["name"]: p["schema"] for p in paths["/api/runs"]["get"]["parameters"]}
    assert runs["per_page"]["maximum"] == 200
    health = paths["/healthz"]["get"]
    assert health["security"] == [] and "401" not in health["responses"]
    events = paths["/api/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]
    error = histogram["responses"]["404"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}


def test_served_to_a_token_and_refused_without_one(app: Flask, tmp_path: Path) -> None:
    db = app.extensions["overwatch"].db
    token = users.issue_token(db, "alice")
    client = app.test_client()
    refused = client.get("/api/openapi.json")
    assert refused.status_code == 401
    assert "error" in refused.get_json()
    served = client.get("/api/openapi.json", headers={"Authorization": f"Bearer {token}"})
    assert served.status_code == 200
    assert served.get_json()["openapi"] == "3.0.3"
    again = client.get(
        "/api/openapi.json",
        headers={"Authorization": f"Bearer {token}", "If-None-Match": served.headers["ETag"]},
    )
    assert again.status_code == 304


def test_openapi_path_turns_flask_variables_into_templates() -> None:
    from werkzeug.routing import Rule

    assert (
        openapi.openapi_path(Rule("/api/runs/<int:run>/<subsystem>/trends/<path:path>"))
        == "/api/runs/{run}/{subsystem}/trends/{path}"
    )
    assert openapi.openapi_path(Rule("/api/x/<int(signed=True):n>")) == "/api/x/{n}"
