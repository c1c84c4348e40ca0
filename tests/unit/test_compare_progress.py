"""``overwatch compare``'s progress: chunks of at most CHUNK_PATHS histograms move a bar of
the histograms compared, shown on request or on a terminal, and results stay the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from overwatch import rootio
from overwatch.histogram import Axis, Histogram
from processing.compare import runner
from processing.compare.registry import configure
from processing.compare.runner import CompareRequest, run_comparison

N = 7


def write(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    hists = []
    for i in range(N):
        h = Histogram.empty(f"dir{i % 2}/h{i}", [Axis.regular(10, 0.0, 1.0)], "TH1F")
        h.fill(rng.random(200))
        hists.append(h)
    path.write_bytes(rootio.to_bytes(hists))
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path / "test.root", 1), write(tmp_path / "ref.root", 2)


def results(run) -> list[tuple]:
    return [(r.path, r.test, r.status, r.pvalue) for r in run.results]


@pytest.mark.parametrize("jobs", [1, 2])
def test_small_chunks_move_the_bar_and_change_no_result(files, capsys, monkeypatch, jobs) -> None:
    test, ref = files
    whole = run_comparison(CompareRequest(test, [ref], [configure("chi2")], jobs=jobs))
    assert capsys.readouterr().err == ""  # progress off by default (library callers)
    monkeypatch.setattr(runner, "CHUNK_PATHS", 2)
    request = CompareRequest(test, [ref], [configure("chi2")], jobs=jobs, progress=True)
    chunked = run_comparison(request)
    assert results(chunked) == results(whole)
    assert len(whole.results) == N
    err = capsys.readouterr().err
    assert "compare: 100%|" in err and f"{N}/{N}" in err, err


def test_the_command_shows_no_bar_when_stderr_is_no_terminal(files, capsys) -> None:
    from overwatch.cli import main

    test, ref = files
    assert main(["compare", str(test), str(ref)]) in (0, 1)
    captured = capsys.readouterr()
    assert "%|" not in captured.err
    assert "dir0" in captured.out and "dir1" in captured.out
