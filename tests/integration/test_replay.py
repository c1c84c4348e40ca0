"""``overwatch replay`` as a real process, through real ``overwatch receive`` processes.

(a) The generated archive (Zurich names, a run across the autumn change)
replayed at ``--speed max`` into a fresh data directory, then ``overwatch
process --once``: true UTC names and instants, no counter reset, whole runs
equal to their last snapshot. (b) A 60-snapshot run at ``--speed max``: every
snapshot stored once, in order, names and bytes equal to the source's, with
both patterns. (c) ``overwatch demo --replay``: the whole system on a replay.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from overwatch.store.db import open_db, read
from overwatch.timestamps import from_unix, snapshot_filename
from processing.slices.reader import SliceReader
from tests.archive_support import AUTUMN_RUN, SUBSYSTEMS, last_content, make_archive
from tests.integration.receiver_helpers import (
    free_port,
    overwatch_process,
    stop_process,
    stored_files,
    wait_for,
    wait_for_line,
)
from tests.processing_helpers import T0, write_snapshot
from tests.unit.test_replay import content

pytestmark = pytest.mark.integration

OVERWATCH = str(Path(sys.executable).parent / "overwatch")


def replay_into(
    tmp_path: Path, source: Path, expected: dict[str, int], *options: str, pattern: str = "rep"
) -> tuple[Path, str]:
    """Replay ``source`` at max speed into a fresh data directory through one real
    receiver process per subsystem, until each stored its ``expected`` number of
    snapshots; returns the data directory and the replay's output."""
    data = tmp_path / "data"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    receivers = []
    try:
        replay = overwatch_process(
            ["replay", str(source), "--bind", endpoint, "--pattern", pattern, "--speed", "max",
             *options],
            tmp_path,
        )  # fmt: skip
        wait_for_line(replay, "replaying ")
        for subsystem in expected:
            receivers.append(
                overwatch_process(
                    [
                        "receive",
                        "--subsystem",
                        subsystem,
                        "--connect",
                        endpoint,
                        "--pattern",
                        "req" if pattern == "rep" else "sub",
                        "--interval",
                        "0.5",
                        "--data-dir",
                        str(data),
                        "--notify",
                        "",
                    ],
                    tmp_path,
                )  # fmt: skip
            )
        output = replay.communicate(timeout=120)[0].decode()
        assert replay.returncode == 0, output + Path(replay.log_file.name).read_text()
        for subsystem, count in expected.items():  # published is not yet stored
            wait_for(lambda s=subsystem, n=count: len(stored_files(data, s)) >= n, 15, subsystem)
        return data, output
    finally:
        for receiver in receivers:
            assert stop_process(receiver) == 0, Path(receiver.log_file.name).read_text()
        stop_process(replay)


def run_files(data: Path, run: int, subsystem: str) -> list[Path]:
    return sorted((data / f"Run{run}" / subsystem).glob(f"{subsystem}hists.*.root"))


def chain(db, run: int, subsystem: str) -> dict:
    def work(ow):
        sub = ow.runs[run].subsystems[subsystem]
        return {
            "times": list(sub.snapshots.keys()),
            "files": [Path(r.filename).name for r in sub.snapshots.values()],
            "resets": [r.resets for r in sub.snapshots.values()],
            "segments": sub.segments,
        }

    return read(db, work)


def test_archive_replayed_through_receivers_keeps_true_instants(tmp_path) -> None:
    written = make_archive(tmp_path / "archive")
    data, output = replay_into(
        tmp_path, tmp_path / "archive", dict.fromkeys(SUBSYSTEMS, 30), "--archived"
    )
    assert "replay finished: 60 snapshot(s)" in output
    assert "  EMC: 30 served" in output and "  TPC: 30 served" in output
    uri = f"file://{tmp_path / 'db.fs'}"
    done = subprocess.run(
        [OVERWATCH, "process", "--once", "--data-dir", str(data), "--db", uri],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    db = open_db(uri)
    try:
        reader = SliceReader(data, db)
        for run in sorted({s.run for s in written}):
            for subsystem in SUBSYSTEMS:
                mine = sorted(
                    (s for s in written if (s.run, s.subsystem) == (run, subsystem)),
                    key=lambda s: s.instant,
                )
                truth = [s.instant for s in mine]
                # Stored under the true UTC instant of each source snapshot, in order ...
                files = run_files(data, run, subsystem)
                names = [p.name for p in files]
                assert names == [snapshot_filename(subsystem, from_unix(t)) for t in truth]
                assert [p.read_bytes() for p in files] == [s.path.read_bytes() for s in mine]
                # ... recorded at those instants, with no counter reset ...
                view = chain(db, run, subsystem)
                assert view["times"] == truth and view["files"] == names
                assert view["segments"] == 1 and not any(view["resets"])
                # ... and the whole run holds exactly its last snapshot.
                for expected in last_content(run):
                    whole = reader.cumulative(run, subsystem, expected.name)
                    np.testing.assert_array_equal(whole.values, expected.values)
                    assert whole.entries == expected.entries
    finally:
        db.close()
    autumn = [s.instant for s in written if (s.run, s.subsystem) == (AUTUMN_RUN, "EMC")]
    assert max(autumn) - min(autumn) < 20 * 60  # not the 59 minutes of name order


@pytest.mark.parametrize("pattern", ["rep", "pub"])
def test_sixty_snapshots_at_max_speed_are_each_stored_once_in_order(tmp_path, pattern) -> None:
    source = tmp_path / "source"
    paths = [write_snapshot(source, 3, "EMC", T0 + 7 * i, content(i + 1)) for i in range(60)]
    data, output = replay_into(tmp_path, source, {"EMC": 60}, pattern=pattern)
    assert "replay finished: 60 snapshot(s)" in output
    got = stored_files(data, "EMC")
    assert [p.name for p in got] == [p.name for p in paths]  # once each, in order
    assert [p.read_bytes() for p in got] == [p.read_bytes() for p in paths]
    assert re.search(r"\(\d+(\.\d)? snapshots/s\)", output)


def test_demo_runs_on_a_replay(tmp_path) -> None:
    written = make_archive(tmp_path / "archive")
    source = tmp_path / "archive" / f"Run{AUTUMN_RUN}"
    data_dir, port = tmp_path / "demo", free_port()
    demo = subprocess.run(
        [OVERWATCH, "demo", "--replay", str(source), "--archived", "--speed", "max",
         "--duration", "25", "--interval", "1", "--port", str(port), "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert f"replaying {source} (speed max) instead of the simulator:" in output
    assert f"20 snapshot(s) of run(s) {AUTUMN_RUN}, subsystems EMC, TPC" in output
    config = (data_dir / "supervisord.conf").read_text()
    assert "[program:replay]" in config and "[program:simulator]" not in config
    assert "[program:receiver-HLT]" not in config  # one receiver per subsystem of the source
    for subsystem in SUBSYSTEMS:
        # The web served the replayed run: every snapshot, slices and histograms as JSON.
        line = re.search(
            rf"^{subsystem}: snapshots (\d+), slices (\d+), histograms (\d+), json_served (\d+)",
            output,
            re.M,
        )
        assert line, output
        snapshots, slices, histograms, served = map(int, line.groups())
        assert snapshots == 10 and slices >= 1 and histograms == 2 and served > 0
        truth = sorted(
            s.instant for s in written if (s.run, s.subsystem) == (AUTUMN_RUN, subsystem)
        )
        names = [p.name for p in run_files(data_dir, AUTUMN_RUN, subsystem)]
        assert names == [snapshot_filename(subsystem, from_unix(t)) for t in truth]
    assert "demo check: all subsystems served" in output


def test_demo_refuses_a_bad_replay_before_starting(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    cases = [
        (["--replay", str(tmp_path / "empty")], "holds no readable snapshot"),
        (["--replay", str(tmp_path / "empty"), "--speed", "fast"], "invalid speed 'fast'"),
        (["--speed", "2"], "--speed only with --replay SOURCE"),
        (["--replay", str(tmp_path), "--faults", "f.yaml"], "--faults is the simulator's"),
    ]
    for argv, message in cases:
        done = subprocess.run(
            [OVERWATCH, "demo", "--data-dir", str(tmp_path / "demo"), "--port", str(free_port()),
             *argv],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
        assert not (tmp_path / "demo").exists()  # refused before anything was touched
