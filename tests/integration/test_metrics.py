"""GET /metrics of a real ``overwatch web`` with 2 gunicorn workers on a ZEO server:
requests spread over the workers are all counted (prometheus-client's multiprocess
folder under the data directory's status folder), state metrics answer the same
from every worker."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse
from urllib.request import urlopen

import pytest
from prometheus_client.parser import text_string_to_metric_families

from receivers.heartbeat import Heartbeat
from tests.unit.test_web_support import running_site

pytestmark = pytest.mark.integration

REQUESTS = 60
BATCHES = 20


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urlopen(f"{url}/metrics", timeout=30) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def healthz(url: str) -> int:
    with urlopen(f"{url}/healthz", timeout=30) as response:  # a new connection each time
        return response.status


def test_requests_over_two_workers_are_all_counted(tmp_path) -> None:
    with running_site(tmp_path, workers=2) as site:
        beat = Heartbeat(site.data_dir, "EMC")
        beat.count("stored", 5)
        assert beat.maybe_write(force=True)
        port = urlparse(site.url).port
        folder = site.data_dir / "status" / f"web-metrics-{port}"

        key = ("overwatch_http_requests_total", (("endpoint", "api.healthz"), ("status", "2xx")))
        before = scrape(site.url).get(key, 0.0)  # the start-up wait polled /healthz too
        sent = 0
        with ThreadPoolExecutor(24) as pool:  # batches until both workers answered some
            for _ in range(BATCHES):
                statuses = list(pool.map(healthz, [site.url] * REQUESTS))
                assert statuses == [200] * REQUESTS
                sent += REQUESTS
                pids = {re.sub(r"\D", "", p.name) for p in folder.glob("counter_*.db")}
                if len(pids) == 2:
                    break
        assert len(pids) == 2, sorted(p.name for p in folder.iterdir())
        counted = before + sent
        # Every scrape, whichever worker answers, sums both workers' counts.
        seconds = ("overwatch_http_request_duration_seconds_count", key[1])
        for _ in range(4):
            later = scrape(site.url)
            assert later[key] == counted
            assert later[seconds] == counted
            assert later[("overwatch_receiver_stored_total", (("subsystem", "EMC"),))] == 5.0
            # The simulated run: 3 snapshots of each of 3 subsystems, processed.
            worker = (("worker", "processing"),)
            assert later[("overwatch_processing_snapshots_processed_total", worker)] == 9.0
            assert later[("overwatch_database_up", ())] == 1.0
