"""Every object of a producer, twice through a real receiver, processed, served and drawn.

The two ROOT-written fixture snapshots (the second with contents changed) are
sent by ``overwatch replay`` to a real ``overwatch receive`` process, processed
by ``overwatch process --once``, and read back through the view service the web
uses: every object is listed, the whole-run JSON equals ROOT's of the second
snapshot, and each subtractable object's slice equals ROOT's own subtraction.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from overwatch import cli
from overwatch.config import ProcessingSettings
from overwatch.store.db import open_db
from processing import SliceService
from tests.integration.test_replay import replay_into
from tests.processing_helpers import T0
from tests.rootjson_support import FIXTURES, differences, index, root_json
from tests.unit.test_producer_objects import HISTOGRAMS, SLICED, WHOLE

pytestmark = pytest.mark.integration


def test_fixture_objects_through_a_real_receiver(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for k, n in enumerate((1, 2)):  # a folder of one run's files, in the producer's order
        target = source / f"EMChists.2026_01_01_00_0{k}_00.root"
        shutil.copy(FIXTURES / f"objects_{n}.root", target)
        os.utime(target, (T0 + 60 * k, T0 + 60 * k))
    data, _ = replay_into(tmp_path, source, {"EMC": 2}, "--run-as", "7")
    uri = f"file://{tmp_path / 'ow.fs'}"
    assert cli.main(["process", "--once", "--data-dir", str(data), "--db", uri]) == 0
    db = open_db(uri)
    try:
        service = SliceService(data, db, settings=ProcessingSettings())
        whole = service.view(7, "EMC", "cumulative")
        latest = service.view(7, "EMC", "latest")
        listed = dict(whole.paths)
        for key, info in index(2).items():
            if info["class"] in HISTOGRAMS | WHOLE | SLICED:
                assert listed.get(key) == info["class"], key
                assert differences(whole.jsroot(key), root_json(2, key), key) == []
            if info["class"] in SLICED or info["class"] in HISTOGRAMS:
                reference = json.loads(
                    (FIXTURES / "slices" / f"{key.replace('/', '__')}.json").read_text()
                )
                for bound in ("fMinimum", "fMaximum"):  # a slice keeps the producer's
                    if bound in reference:
                        reference[bound] = root_json(2, key)[bound]
                assert differences(latest.jsroot(key), reference, key) == []
    finally:
        db.close()
