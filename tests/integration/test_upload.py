"""``POST /api/upload`` on a real ``overwatch web`` (gunicorn, two workers, ZEO) with processing.

A DQM agent's path end to end: a user allowed to upload (made with the real
``overwatch users`` command), a ROOT file written by uproot, the snapshot
stored by a web worker, announced, and processed by a running ``overwatch
process``; and the refusals the issue names (401, 400 + quarantine, 413),
uploads racing through both workers, and a short fuzz of the route with a token
that may upload (the API-wide fuzz test's token may not).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import schemathesis
import uproot
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from receivers.quarantine import read_index
from tests.unit.test_web_support import PASSWORD, overwatch, running_site, wait_until

pytestmark = pytest.mark.integration

#: receiver.max_message_bytes of the site, so "too big" is cheap to send.
LIMIT = 300_000
#: 2025-11-22 10:00:00 UTC
T0 = 1_763_805_600.0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("upload")
    env = {"OVERWATCH_RECEIVER__MAX_MESSAGE_BYTES": str(LIMIT)}
    with running_site(tmp, processing=True, env_extra=env) as running:
        overwatch("users", "add", "dqm", "--upload", "--db", running.db_uri, "--password-stdin",
                  cwd=tmp, stdin=PASSWORD + "\n")  # fmt: skip
        running.upload_token = overwatch("users", "token", "dqm", "--db", running.db_uri, cwd=tmp)
        yield running


def root_file(tmp: Path, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    path = tmp / f"dqm-{seed}.root"
    with uproot.recreate(path) as file:
        file["events"] = np.histogram(rng.random(1000 + seed), bins=1, range=(0, 1))
        file["DQM/occupancy"] = np.histogram2d(
            rng.normal(size=2000), rng.normal(size=2000), bins=(16, 12), range=((-3, 3), (-3, 3))
        )
    return path.read_bytes()


def upload(site, body: bytes, token: str | None = None, **fields: str) -> requests.Response:
    headers = {f"X-Overwatch-{name.title()}": value for name, value in fields.items()}
    headers["Authorization"] = f"Bearer {token or site.upload_token}"
    headers["Content-Type"] = "application/octet-stream"
    return requests.post(f"{site.url}/api/upload", data=body, headers=headers, timeout=30)


def test_a_valid_file_is_stored_and_processed(site, tmp_path) -> None:
    payload = root_file(tmp_path, 1)
    answer = upload(site, payload, run="21", subsystem="DQM", timestamp="2025-11-22T10:00:00Z")
    assert answer.status_code == 201, answer.text
    relpath = "Run21/DQM/DQMhists.2025_11_22_10_00_00.root"
    assert answer.json() == {"stored": relpath, "status": "stored"}
    assert (site.data_dir / relpath).read_bytes() == payload
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {site.token}"

    def processed() -> list[str]:
        found = api.get(f"{site.url}/api/runs/21/DQM/histograms", timeout=10)
        return [h["path"] for h in found.json()["histograms"]] if found.ok else []

    # Processing is woken by the upload's notice (its scheduled pass is 10 s away at most).
    wait_until(lambda: processed(), 60, "processing of the uploaded snapshot")
    assert sorted(processed()) == ["DQM/occupancy", "events"]
    again = upload(site, payload, run="21", subsystem="DQM", timestamp=str(T0 + 60))
    assert (again.status_code, again.json()) in [
        (200, {"status": "duplicate"}),  # the same worker remembers the bytes
        (201, {"stored": "Run21/DQM/DQMhists.2025_11_22_10_01_00.root", "status": "stored"}),
    ]  # another worker does not: harmless, an identical snapshot adds an empty slice


def test_a_wrong_token_is_401(site, tmp_path) -> None:
    answer = upload(site, root_file(tmp_path, 2), token="wrong", run="22", subsystem="EMC")
    assert answer.status_code == 401 and answer.json() == {"error": "invalid or revoked API token"}
    assert not (site.data_dir / "Run22").exists()


def test_a_user_not_allowed_to_upload_is_403(site, tmp_path) -> None:
    answer = upload(site, root_file(tmp_path, 3), token=site.token, run="23", subsystem="EMC")
    assert answer.status_code == 403 and "allow-upload shifter" in answer.json()["error"]
    assert not (site.data_dir / "Run23").exists()


def test_not_root_is_400_and_quarantined(site) -> None:
    junk = b"\x89PNG\r\n\x1a\n this is a picture, not histograms"
    answer = upload(site, junk, run="24", subsystem="HLT", timestamp=str(T0))
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("not a ROOT file listing objects")
    records = [r for r in read_index(site.data_dir, "HLT") if '"run":24' in (r["header"] or "")]
    assert len(records) == 1 and records[0]["reason"].startswith("bad payload")
    assert (site.data_dir / "quarantine" / records[0]["kept"]).read_bytes() == junk
    assert not (site.data_dir / "Run24").exists()


def test_too_big_is_413(site) -> None:
    answer = upload(site, b"\0" * (LIMIT + 1), run="25", subsystem="EMC")
    assert answer.status_code == 413
    assert f"more than receiver.max_message_bytes ({LIMIT})" in answer.json()["error"]
    # Without a length (chunked), it is refused while reading.
    chunked = requests.post(
        f"{site.url}/api/upload",
        data=iter([b"\0" * 100_000] * 4),
        headers={"Authorization": f"Bearer {site.upload_token}", "X-Overwatch-Run": "25",
                 "X-Overwatch-Subsystem": "EMC", "Content-Type": "application/octet-stream"},
        timeout=30,
    )  # fmt: skip
    assert chunked.status_code == 413
    assert not (site.data_dir / "Run25").exists()
    assert upload(site, b"", run="25", subsystem="EMC").status_code == 400  # still answering


def test_uploads_racing_through_both_workers_all_keep_their_own_name(site, tmp_path) -> None:
    payloads = [root_file(tmp_path, 100 + i) for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda p: upload(site, p, run="26", subsystem="EMC", timestamp=str(T0)), payloads
            )
        )
    assert [a.status_code for a in answers] == [201] * len(payloads), [a.text for a in answers]
    names = [a.json()["stored"] for a in answers]
    assert len(set(names)) == len(payloads)
    assert {(site.data_dir / n).read_bytes() for n in names} == set(payloads)


@pytest.mark.timeout(300)
def test_fuzzing_the_upload_route_finds_no_server_error(site) -> None:
    headers = {"Authorization": f"Bearer {site.upload_token}"}
    schema = schemathesis.openapi.from_url(
        f"{site.url}/api/openapi.json", headers=headers, timeout=30
    )
    operation = schema["/api/upload"]["POST"]
    statuses: dict[int, int] = {}
    failures: list[str] = []
    session = requests.Session()
    started = time.monotonic()
    for mode, examples in ((GenerationMode.POSITIVE, 60), (GenerationMode.NEGATIVE, 60)):

        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case) -> None:
            try:
                kwargs = case.as_transport_kwargs(base_url=site.url, headers=headers)
                response = session.request(**kwargs, timeout=30)
            except (requests.exceptions.InvalidHeader, ValueError):
                return  # the client refuses to send it
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{response.status_code}: {case.as_curl_command(site.url)}")

        run()
    session.close()
    report = f"statuses {dict(sorted(statuses.items()))} in {time.monotonic() - started:.0f} s"
    print(report)
    assert not failures, "\n".join([report, *failures[:10]])
    assert sum(statuses.values()) >= 60, report
    assert "error while serving /api/upload" not in site.log.read_text()
