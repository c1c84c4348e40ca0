"""Property-based fuzzing of the JSON API: schemathesis against a real gunicorn server.

The cases come from the API's own description (``/api/openapi.json``,
:mod:`webapp.openapi`), fetched from the running server with the site's API
token. Every operation gets three kinds of cases:

- ``positive``: every value generated from the schema (mostly names no run has);
- ``negative``: values that break the schema (wrong types, out of range, missing);
- ``on-data``: generated like ``positive``, then pointed at what the site holds
  (run 1, its subsystems, histogram paths, a real slice id), so the query
  parameters and bodies reach the code behind the look-ups.

The only property is the one the issue asks for: no answer is a 5xx. Cases are
never shrunk (a 5xx is recorded, not raised), so one run lists every distinct
failure: the operation, the status, the request (as curl) and the server's
traceback summary from its log. Generation is derandomised, so ``make test``
replays the same cases; set ``OVERWATCH_FUZZ_SEED`` to explore others.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

import processing
from tests.unit.test_web_support import Site, running_site

pytestmark = pytest.mark.integration

#: Examples asked for per operation and kind; operations with few values run out earlier.
EXAMPLES = {"positive": 50, "negative": 40, "on-data": 80}
MIN_CASES = 2000
#: The whole fuzz (not the server's start) must end within this.
TIME_BUDGET_SECONDS = 240.0
REQUEST_TIMEOUT = 30.0
EVENT_STREAM = "text/event-stream"


@dataclass
class Tally:
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    #: (operation, status) -> one request that got it, as curl
    failures: dict[tuple[str, int], str] = field(default_factory=dict)
    unsendable: int = 0
    kinds_skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Known:
    """What the site holds, for the on-data cases."""

    subsystems: list[str]
    paths: list[str]
    slices: list[str]
    #: unix times of run 1's first and last snapshot
    times: tuple[float, float]

    def slice_values(self) -> st.SearchStrategy[str]:
        """Slice parameters: the site's, unknown ids, and links near and off its snapshots."""
        first, last = self.times
        moment = st.sampled_from([first, last, first + 1, 0.0, -1.0, 1e300]) | st.floats()
        bound = st.one_of(st.just("start"), moment.map(lambda t: f"{t:.0f}"), moment.map(str))
        option = st.sampled_from(["", ";scale_by_events=true", ";scale_by_events=x", ";x=1", ";="])
        return st.one_of(
            st.sampled_from(self.slices),
            st.from_regex(processing.SLICE_ID, fullmatch=True),  # ids nobody described
            st.builds(lambda a, b, o: f"{a}..{b}{o}", bound, bound, option),
            st.builds(lambda m, o: f"last:{m}{o}", moment.map(str) | st.integers(), option),
        )


#: Bodies no schema describes: deep nesting, broken JSON or UTF-8, too large for the server.
_DEPTH = st.sampled_from([100, 1_000, 5_000, 30_000]) | st.integers(1, 40_000)
HOSTILE_BODIES = st.one_of(
    _DEPTH.map(lambda depth: b"[" * depth + b"]" * depth),
    _DEPTH.map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.binary(max_size=200),
    st.just(b"x" * 70_000),
    st.just(rb'{"start": "\ud800"}'),  # a lone surrogate
)


def _known(site: Site, session: requests.Session) -> Known:
    listing = session.get(f"{site.url}/api/runs/1/EMC/histograms", timeout=REQUEST_TIMEOUT)
    listing.raise_for_status()
    paths = [item["path"] for item in listing.json()["histograms"]]
    trends = session.get(f"{site.url}/api/runs/1/EMC/trends", timeout=REQUEST_TIMEOUT).json()
    paths += sorted({item["path"] for item in trends["trends"]} - set(paths))
    made = session.post(
        f"{site.url}/api/runs/1/EMC/slices", json={"preset": "last:5"}, timeout=REQUEST_TIMEOUT
    )
    assert made.status_code == 201, made.text
    slices = ["cumulative", "latest", made.json()["id"], made.json()["link"]]
    form = session.get(f"{site.url}/api/runs/1/EMC/slices", timeout=REQUEST_TIMEOUT).json()
    times = (form["snapshots"]["first"], form["snapshots"]["last"])
    return Known(["EMC", "TPC", "HLT"], paths, slices, times)


def _aim(case, known: Known, data: st.DataObject) -> None:
    """Point a generated case at the site's data (each value sometimes kept as generated)."""
    values = case.path_parameters or {}
    choices = {"run": [1], "subsystem": known.subsystems, "path": known.paths,
               "slice_id": known.slices[2:]}  # fmt: skip
    for name, options in choices.items():
        if name in values and data.draw(st.integers(0, 4)):
            values[name] = data.draw(st.sampled_from(options))
    if "slice_id" in values and data.draw(st.booleans()):
        values["slice_id"] = data.draw(known.slice_values())
    if any(p.name == "slice" for p in case.operation.iter_parameters()) and data.draw(
        st.integers(0, 3)
    ):
        case.query = {**(case.query or {}), "slice": data.draw(known.slice_values())}


def _send(case, site: Site, session, tally: Tally, body: bytes | None = None) -> None:
    try:
        # The site's token wins over any Authorization the schema's security made up.
        kwargs = case.as_transport_kwargs(base_url=site.url, headers=dict(session.headers))
        if body is not None:  # sent as JSON, whatever it holds
            kwargs.pop("json", None)
            kwargs["data"] = body
            kwargs["headers"]["Content-Type"] = "application/json"
        response = session.request(**kwargs, stream=True, timeout=REQUEST_TIMEOUT)
    except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, ValueError):
        tally.unsendable += 1  # the client refuses to send it: not a case the server saw
        return
    with response:
        if not response.headers.get("Content-Type", "").startswith(EVENT_STREAM):
            response.content  # noqa: B018 - read it all, as a client would
    tally.cases += 1
    tally.statuses[response.status_code] += 1
    if response.status_code >= 500:
        key = (case.operation.label, response.status_code)
        sent = case.as_curl_command(base_url=site.url)
        if body is not None:
            sent += f"  [body replaced by {body[:40]!r}..., {len(body)} bytes]"
        tally.failures.setdefault(key, sent)


def _fuzz(operation, kind: str, site: Site, session, known: Known, tally: Tally, ends: float):
    mode = GenerationMode.NEGATIVE if kind == "negative" else GenerationMode.POSITIVE
    strategy = operation.as_strategy(generation_mode=mode)

    @settings(
        max_examples=EXAMPLES[kind],
        deadline=None,
        database=None,  # nothing written into the work tree
        phases=[Phase.generate],  # a 5xx is recorded, never shrunk
        derandomize="OVERWATCH_FUZZ_SEED" not in os.environ,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, data=st.data())
    def run(case, data) -> None:
        if time.monotonic() > ends:
            return
        body = None
        if kind == "on-data":
            _aim(case, known, data)
            if case.method == "POST" and data.draw(st.integers(0, 3)) == 0:
                body = data.draw(HOSTILE_BODIES)
        _send(case, site, session, tally, body)

    if "OVERWATCH_FUZZ_SEED" in os.environ:
        run = seed(int(os.environ["OVERWATCH_FUZZ_SEED"]))(run)
    try:
        run()
    except Unsatisfiable:
        tally.kinds_skipped.append(f"{kind} {operation.label}")  # nothing to break or generate


_TRACEBACK = re.compile(
    r"error while serving (?P<path>\S+)\nTraceback.*?\n(?P<last>[A-Za-z_.]+(?:Error|Exception)[^\n]*)",
    re.S,
)
_FRAME = re.compile(
    r'File "(?P<file>[^"]*/(?:webapp|processing|overwatch)/[^"]+)", line (?P<line>\d+), in (?P<func>\w+)'
)


def server_errors(log: Path) -> list[str]:
    """Distinct server tracebacks in the web log: innermost project frame and the exception."""
    text = log.read_text(errors="replace")
    found: dict[str, str] = {}
    for match in _TRACEBACK.finditer(text):
        frames = _FRAME.findall(match.group(0))
        where = ":".join(frames[-1]) if frames else "?"
        where = re.sub(r".*/((?:webapp|processing|overwatch)/)", r"\1", where)
        found.setdefault(f"{where} {match['last'][:160]}", match["path"])
    return [f"{summary} (e.g. {path})" for summary, path in found.items()]


@pytest.mark.timeout(600)
def test_fuzzing_the_api_finds_no_server_error(tmp_path: Path) -> None:
    with running_site(tmp_path) as site:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {site.token}"
        schema = schemathesis.openapi.from_url(
            f"{site.url}/api/openapi.json", headers=dict(session.headers), timeout=30
        )
        known = _known(site, session)
        tally = Tally()
        started = time.monotonic()
        ends = started + TIME_BUDGET_SECONDS
        operations = [result.ok() for result in schema.get_all_operations()]
        # Every operation but the description's own URL, which schemathesis leaves out.
        assert len(operations) >= 26, " ".join(op.label for op in operations)
        for kind in EXAMPLES:
            for operation in operations:
                _fuzz(operation, kind, site, session, known, tally, ends)
        elapsed = time.monotonic() - started
        session.close()
        errors = server_errors(site.log)
    report = (
        f"{tally.cases} cases in {elapsed:.0f} s over {len(operations)} operations; "
        f"statuses {dict(sorted(tally.statuses.items()))}; {tally.unsendable} unsendable\n"
        + "".join(f"  {op} -> {status}: {curl}\n" for (op, status), curl in tally.failures.items())
        + "".join(f"  server: {line}\n" for line in errors)
    )
    print(report)
    assert not tally.failures and not errors, report
    assert tally.cases >= MIN_CASES, report
    assert elapsed < TIME_BUDGET_SECONDS, report
