"""Every histogram class served by the real app is read and drawn by the real JSROOT.

Snapshots built from ROOT's own files (shared/data/root-samples) and a
generated TH3 go through processing; each histogram's JSON, as served, goes
to JSROOT in node (``parse`` then ``makeSVG``), and the bin contents JSROOT
reads are compared with uproot's reading of the source snapshot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import uproot

from tests.jsroot_node import run_jsroot
from tests.unit.test_web_support import SAMPLE_RUN, add_user, build_sample_run, make_app
from webapp import users

EXPECTED_CLASSES = {"TH1F", "TH1D", "TH1I", "TH2F", "TH2D", "TH3F", "TProfile", "TProfile2D"}


def flat(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel(order="F")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """(subsystem, path, class, slice, JSON bytes, snapshot file) of every served histogram."""
    tmp_path = tmp_path_factory.mktemp("jsroot")
    app, db = make_app(tmp_path)
    add_user(db)
    data_dir = Path(app.extensions["overwatch"].data_dir)
    files = build_sample_run(data_dir, db)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {users.issue_token(db, 'alice')}"
    items = []
    for subsystem, relpath in files.items():
        listing = client.get(f"/api/runs/{SAMPLE_RUN}/{subsystem}/histograms").get_json()
        for number, item in enumerate(listing["histograms"]):
            if subsystem == "QA" and number % 5 and item["class_name"] != "TH1I":
                continue  # 200 similar histograms: a fifth of them (and the TH1I) is enough
            # Every histogram cumulative; the latest slice (here: the first snapshot, from the
            # run start) for a few per subsystem, through the other code path.
            for view in ("cumulative", "latest") if number < 3 else ("cumulative",):
                response = client.get(f"{item['url']}?slice={view}")
                assert response.status_code == 200, item["url"]
                items.append(
                    (
                        subsystem,
                        item["path"],
                        item["class_name"],
                        view,
                        response.data,
                        data_dir / relpath,
                    )
                )
    results = run_jsroot([(f"{s}:{p}:{v}", body, "") for s, p, _c, v, body, _f in items])
    return list(zip(items, results, strict=True))


def test_every_class_is_served(served) -> None:
    classes = {item[2] for item, _result in served}
    assert EXPECTED_CLASSES <= classes, EXPECTED_CLASSES - classes
    qa = [item for item, _result in served if item[0] == "QA"]
    assert len(qa) > 40  # QA sample: 200 histograms, a fifth of them checked


def test_jsroot_parses_and_draws_every_histogram(served) -> None:
    for (subsystem, path, class_name, _view, _body, _file), result in served:
        assert result["error"] is None, (subsystem, path, result["error"])
        assert result["typename"] == class_name
        assert result["has_svg"] and result["svg_length"] > 1000, (subsystem, path)
        assert result["fName"] == path.rsplit("/", 1)[-1]


def test_jsroot_bin_contents_equal_uproots_reading_of_the_snapshot(served) -> None:
    compared = 0
    for (subsystem, path, class_name, view, _body, snapshot), result in served:
        with uproot.open(snapshot) as source:
            model = source[path]
            expected = flat(model.values(flow=True))
            edges = [axis.edges(flow=False) for axis in model.axes]
            errors = None if class_name.startswith("TProfile") else flat(model.errors(flow=True))
            entries = model.member("fEntries")
        np.testing.assert_allclose(
            result["contents"], expected, rtol=1e-6, atol=1e-9, err_msg=f"{subsystem}:{path}:{view}"
        )
        if errors is not None:
            np.testing.assert_allclose(result["errors"], errors, rtol=1e-6, atol=1e-9, err_msg=path)
        assert result["fEntries"] == pytest.approx(entries), path
        for axis, axis_edges in zip(result["axes"], edges, strict=True):
            assert axis["nbins"] == len(axis_edges) - 1
            assert axis["xmin"] == pytest.approx(axis_edges[0])
            assert axis["xmax"] == pytest.approx(axis_edges[-1])
            if axis["xbins"]:
                np.testing.assert_allclose(axis["xbins"], axis_edges)
        compared += 1
    assert compared == len(served)


def test_variable_binning_and_labels_reach_jsroot(served) -> None:
    by_name = {(item[0], item[1]): result for item, result in served if item[3] == "cumulative"}
    variable = [r for (s, _p), r in by_name.items() if s == "VAR"]
    assert variable and all(
        len(r["axes"][0]["xbins"]) == r["axes"][0]["nbins"] + 1 for r in variable
    )
    assert not np.allclose(
        np.diff(variable[0]["axes"][0]["xbins"]),
        variable[0]["axes"][0]["xbins"][1] - variable[0]["axes"][0]["xbins"][0],
    )

    ((labelled_item, labelled),) = [
        (i, r) for i, r in served if i[0] == "LAB" and i[3] == "cumulative"
    ]
    with uproot.open(labelled_item[5]) as source:
        expected = [str(label) for label in source[labelled_item[1]].axis(0).labels()]
    labels = [text for _bin, text in labelled["axes"][0]["labels"]]
    assert labels == expected and labels
    assert set(expected) <= set(labelled["svg_texts"])  # drawn, not just parsed
