"""Reading and writing ROOT files, checked against uproot itself on real ROOT files."""

from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import uproot

from overwatch.histogram import Axis, Histogram, is_histogram_class
from overwatch.rootio import (
    RootFileError,
    read_histograms,
    to_bytes,
    validate_root_bytes,
    write_file,
)

DIRECTORY_CLASSES = ("TDirectory", "TDirectoryFile")
HISTOGRAM_PATTERN = re.compile(r"^(TH[123]|TProfile)")


# -- independent views of a file, through uproot only -----------------------------


def uproot_newest(file) -> dict[str, tuple[int, str]]:
    """path -> (highest cycle, class name) of every object, as uproot lists them."""
    newest: dict[str, tuple[int, str]] = {}
    for key, class_name in file.classnames(recursive=True).items():
        path, cycle = key.rsplit(";", 1)
        if path not in newest or int(cycle) > newest[path][0]:
            newest[path] = (int(cycle), class_name)
    return newest


def uproot_histograms(file) -> dict[str, tuple[int, str]]:
    return {
        path: item for path, item in uproot_newest(file).items() if HISTOGRAM_PATTERN.match(item[1])
    }


def readme_table(folder: Path) -> dict[str, Counter]:
    """The class counts of the sample folder's README table, per file."""
    table: dict[str, Counter] = {}
    for line in (folder / "README.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].endswith(".root"):
            counts = Counter()
            for item in cells[2].split(","):
                number, class_name = item.strip().split("×")
                counts[class_name] = int(number)
            table[cells[0]] = counts
    return table


def assert_matches_uproot(histogram: Histogram, model) -> None:
    """Everything Overwatch read equals what uproot computes from the same object."""
    name = histogram.name
    if histogram.is_profile:
        np.testing.assert_allclose(histogram.bin_means(), model.values(flow=True), rtol=1e-12)
        np.testing.assert_allclose(
            histogram.errors(), model.errors(flow=True), rtol=1e-10, atol=1e-300
        )
        np.testing.assert_array_equal(
            histogram.bin_entries.ravel(order="F"), np.asarray(model.member("fBinEntries"))
        )
    else:
        np.testing.assert_array_equal(histogram.values, model.values(flow=True), err_msg=name)
        np.testing.assert_array_equal(
            histogram.variances(), model.variances(flow=True), err_msg=name
        )
    for i, axis in enumerate(histogram.axes):
        uaxis = model.axis(i)
        np.testing.assert_array_equal(axis.edges, uaxis.edges(), err_msg=f"{name} axis {i}")
        assert axis.title == uaxis.member("fTitle")
        labels = uaxis.labels()
        if labels is None:
            assert not axis.labels
        else:
            assert [axis.labels[b] for b in sorted(axis.labels)] == labels
            assert all(1 <= b <= axis.nbins for b in axis.labels)
    assert histogram.title == model.member("fTitle")
    assert histogram.entries == model.member("fEntries")
    for stat, value in histogram.stats.items():
        assert value == model.member(stat), (name, stat)


def assert_identical(a: Histogram, b: Histogram) -> None:
    """Two histograms carry exactly the same arrays, axes and bookkeeping."""
    assert (a.name, a.class_name, a.title, a.entries) == (b.name, b.class_name, b.title, b.entries)
    assert a.stats == b.stats
    assert (a.profile_range, a.error_mode) == (b.profile_range, b.error_mode)
    for attribute in ("values", "sumw2", "bin_entries", "bin_sumw2"):
        mine, theirs = getattr(a, attribute), getattr(b, attribute)
        assert (mine is None) == (theirs is None), (a.name, attribute)
        if mine is not None:
            np.testing.assert_array_equal(mine, theirs, err_msg=f"{a.name} {attribute}")
    assert len(a.axes) == len(b.axes)
    for x, y in zip(a.axes, b.axes, strict=True):
        np.testing.assert_array_equal(x.edges, y.edges)
        assert (x.title, x.labels, x.variable, x.name) == (y.title, y.labels, y.variable, y.name)


# -- reading every sample ---------------------------------------------------------


def test_every_histogram_is_read_as_uproot_sees_it(sample_file: Path) -> None:
    result = read_histograms(sample_file)
    with uproot.open(sample_file) as file:
        expected = uproot_histograms(file)
        assert set(result.histograms) == set(expected)
        for path, (cycle, class_name) in expected.items():
            histogram = result.histograms[path]
            assert histogram.name == path
            assert histogram.class_name == class_name
            assert_matches_uproot(histogram, file[f"{path};{cycle}"])


def test_everything_else_is_skipped_with_its_class(sample_file: Path, root_samples_dir) -> None:
    result = read_histograms(sample_file)  # never raises on these files
    with uproot.open(sample_file) as file:
        all_cycles = Counter(file.classnames(recursive=True).values())
        newest = uproot_newest(file)
    # The README describes the folder (counting every cycle of a key): check it first.
    assert all_cycles == readme_table(root_samples_dir)[sample_file.name]
    others = {
        path: class_name
        for path, (_, class_name) in newest.items()
        if not HISTOGRAM_PATTERN.match(class_name) and class_name not in DIRECTORY_CLASSES
    }
    assert {item.path: item.class_name for item in result.skipped} == others
    assert len(result.skipped) == len(others)  # one note per object, highest cycle only
    assert all(item.reason == "not a histogram" for item in result.skipped)
    readme = readme_table(root_samples_dir)[sample_file.name]
    read = Counter(h.class_name for h in result.histograms.values())
    assert read == Counter({c: n for c, n in readme.items() if is_histogram_class(c)})


def test_issue64_non_histograms_and_duplicate_cycle(root_samples_dir: Path) -> None:
    # README: 428 TParameter<double>, but one of them (f_Deuterium) is stored in two
    # cycles; Overwatch keeps the highest cycle only, so 427 distinct objects remain.
    path = root_samples_dir / "uproot-issue64.root"
    result = read_histograms(path)
    skipped = Counter(item.class_name for item in result.skipped)
    assert skipped == Counter(
        {"TParameter<double>": 427, "TNamed": 18, "TParameter<int>": 1, "TTree": 1}
    )
    duplicate = "detector/materials/DeuteriumGas/f_Deuterium"
    with uproot.open(path) as file:
        assert sorted(file.keys(recursive=True, cycle=True)).count(f"{duplicate};2") == 1
        assert f"{duplicate};1" in file.keys(recursive=True, cycle=True)
    assert [item.path for item in result.skipped].count(duplicate) == 1
    assert sorted(result.histograms) == sorted(
        f"generator/{n}"
        for n in ("_log_primary_w", "_cost_all", "_energy_all", "_cost_accept", "_energy_accept")
    )


def test_names_selects_histograms(root_samples_dir: Path) -> None:
    path = root_samples_dir / "uproot-issue-513.root"
    everything = read_histograms(path)
    wanted = sorted(everything.histograms)[:2]
    subset = read_histograms(path, names=wanted)
    assert sorted(subset.histograms) == wanted
    for name in wanted:
        assert_identical(subset.histograms[name], everything.histograms[name])


# -- writing ------------------------------------------------------------------------


def test_round_trip_through_bytes_is_exact(sample_file: Path) -> None:
    first = read_histograms(sample_file)
    data = to_bytes(first.histograms.values())
    second = read_histograms(data)
    assert list(second.histograms) == list(first.histograms)
    assert second.skipped == []
    for path, histogram in first.histograms.items():
        assert_identical(histogram, second.histograms[path])


def test_written_file_is_standard_root(sample_file: Path, tmp_path: Path) -> None:
    histograms = read_histograms(sample_file).histograms
    target = tmp_path / "written.root"
    assert write_file(target, histograms.values()) == len(histograms)
    with uproot.open(sample_file) as original, uproot.open(target) as written:
        expected = uproot_histograms(original)
        assert {p: c for p, (_, c) in uproot_histograms(written).items()} == {
            p: c for p, (_, c) in expected.items()
        }
        for path, (cycle, _) in expected.items():
            old, new = original[f"{path};{cycle}"], written[path]
            np.testing.assert_array_equal(new.values(flow=True), old.values(flow=True))
            np.testing.assert_array_equal(new.variances(flow=True), old.variances(flow=True))
            for i in range(len(histograms[path].axes)):
                np.testing.assert_array_equal(new.axis(i).edges(), old.axis(i).edges())
                assert new.axis(i).labels() == old.axis(i).labels()
                assert new.axis(i).member("fTitle") == old.axis(i).member("fTitle")
            for member in ("fTitle", "fEntries", "fTsumw", "fTsumw2", "fTsumwx", "fTsumwx2"):
                assert new.member(member) == old.member(member), (path, member)
            if new.classname.startswith("TProfile"):
                assert np.array_equal(new.member("fBinEntries"), old.member("fBinEntries"))


def test_nested_directories_and_names_with_spaces(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    paths = ["dir one/sub/name with space", "dir one/other", "top level", "a/b/c/deep"]
    histograms = []
    for i, path in enumerate(paths):
        histogram = Histogram.empty(path, [Axis.regular(5 + i, -1.0, 1.0)], "TH1F", title=path)
        histogram.fill(rng.normal(size=50))
        histograms.append(histogram)
    target = tmp_path / "nested.root"
    write_file(target, histograms)
    for source in (target, to_bytes(histograms)):
        result = read_histograms(source)
        assert sorted(result.histograms) == sorted(paths)
        for histogram in histograms:
            assert_identical(result.histograms[histogram.name], histogram)
    with uproot.open(target) as file:
        assert file.classnames(recursive=False)["dir one;1"] == "TDirectory"
        model = file["dir one"]["sub"]["name with space"]
        np.testing.assert_array_equal(model.values(flow=True), histograms[0].values)


def test_highest_cycle_only(tmp_path: Path) -> None:
    target = tmp_path / "cycles.root"
    old, new = (
        np.histogram([0.5, 1.5, 2.5], bins=3, range=(0, 3)),
        np.histogram([0.5, 0.5, 2.5, 2.5, 2.5], bins=3, range=(0, 3)),
    )
    with uproot.recreate(target) as file:  # assigning a name twice writes a second cycle
        file["h"] = old
        file["h"] = new
        file["dir/h"] = old
        file["dir/h"] = new
    with uproot.open(target) as file:
        assert {"h;1", "h;2", "dir/h;1", "dir/h;2"} <= set(file.keys(recursive=True, cycle=True))
        assert list(file["h;1"].values()) == [1, 1, 1]  # the old cycle really is there
    result = read_histograms(target)
    assert sorted(result.histograms) == ["dir/h", "h"]
    for histogram in result.histograms.values():
        np.testing.assert_array_equal(histogram.values, [0, 2, 0, 3, 0])
        assert histogram.entries == 5


def test_profile_error_modes_match_uproot(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 4, 300), rng.normal(2.0, 0.7, 300)
    histograms = []
    for mode in range(4):
        profile = Histogram.empty(f"p{mode}", [Axis.regular(8, 0, 4)], "TProfile")
        profile.fill(x, y=y, weights=rng.uniform(0.5, 2.0, 300) if mode % 2 else None)
        profile.fill([1.1], y=[3.0])  # a bin with one more entry
        profile.error_mode = mode
        histograms.append(profile)
    target = tmp_path / "modes.root"
    write_file(target, histograms)
    with uproot.open(target) as file:
        for mode, profile in enumerate(histograms):
            model = file[profile.name]
            assert model.member("fErrorMode") == mode
            expected = model.errors(flow=True, error_mode=["", "s", "i", "g"][mode])
            np.testing.assert_allclose(profile.errors(), expected, rtol=1e-12)
            assert_identical(read_histograms(target).histograms[profile.name], profile)


def test_labels_on_several_axes_round_trip(tmp_path: Path) -> None:
    x = Axis.regular(3, 0, 3, labels={1: "first", 2: "second bin", 3: "third"})
    y = Axis.from_edges([0.0, 1.0, 5.0, 10.0], title="y [cm]", labels={1: "low", 3: "high"})
    histogram = Histogram.empty("labelled", [x, y], "TH2D", title="labels", weighted=True)
    histogram.fill([0.5, 1.5, 2.5], [0.5, 2.0, 7.0], weights=[1.0, 2.0, 3.0])
    back = read_histograms(to_bytes([histogram])).histograms["labelled"]
    assert_identical(back, histogram)
    assert back.axes[1].variable and not back.axes[0].variable


# -- bad input ------------------------------------------------------------------------


def _truncated(root_samples_dir: Path, fraction: float) -> bytes:
    data = (root_samples_dir / "uproot-hepdata-example.root").read_bytes()
    return data[: int(len(data) * fraction)]


@pytest.mark.parametrize("fraction", [0.5, 0.99, 0.001])
def test_truncated_bytes_raise_a_clear_error(root_samples_dir: Path, fraction: float) -> None:
    data = _truncated(root_samples_dir, fraction)
    for function in (read_histograms, validate_root_bytes):
        with pytest.raises(RootFileError, match=r"truncated ROOT file"):
            function(data)


def test_one_missing_byte_is_noticed(root_samples_dir: Path) -> None:
    # Without the header check uproot reads such a file and quietly loses the histograms
    # stored last (uproot-issue64.root would give five "unreadable" notes, no error).
    data = (root_samples_dir / "uproot-issue64.root").read_bytes()[:-1]
    with pytest.raises(RootFileError, match=r"header says 179471 bytes, only 179470"):
        read_histograms(data)


def test_truncated_file_on_disk_raises(root_samples_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "cut.root"
    target.write_bytes(_truncated(root_samples_dir, 0.5))
    with pytest.raises(RootFileError, match=r"truncated ROOT file .*cut\.root"):
        read_histograms(target)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", r"empty payload|not a ROOT file"),
        (b"hello, this is not ROOT", r"not a ROOT file"),
        (b"root", r"shorter than the header"),
        (b"root" + bytes(range(256)) * 4, r"ROOT file"),
    ],
    ids=["empty", "text", "magic-only", "magic-then-garbage"],
)
def test_garbage_raises_root_file_error(data: bytes, message: str) -> None:
    for function in (read_histograms, validate_root_bytes):
        with pytest.raises(RootFileError, match=message):
            function(data)


def test_missing_file_or_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_histograms(tmp_path / "absent.root")
    with pytest.raises(RootFileError, match="is a directory"):
        read_histograms(tmp_path)
    text = tmp_path / "notes.root"
    text.write_text("not ROOT at all")
    with pytest.raises(RootFileError, match=r"notes\.root is not a ROOT file"):
        read_histograms(text)


def test_file_without_objects_fails_validation_but_reads_empty() -> None:
    data = to_bytes([])
    with pytest.raises(RootFileError, match="lists no objects"):
        validate_root_bytes(data)
    result = read_histograms(data)
    assert result.histograms == {} and result.skipped == []


def test_validate_counts_top_level_keys(sample_file: Path) -> None:
    data = sample_file.read_bytes()
    with uproot.open(io.BytesIO(data)) as file:
        expected = len(file.keys(recursive=False, cycle=True))
    assert validate_root_bytes(data) == expected


def _two_histograms() -> list[Histogram]:
    out = []
    for name in ("top", "dir/inner"):
        histogram = Histogram.empty(name, [Axis.regular(10, 0, 1)], "TH1D")
        histogram.fill(np.linspace(0, 1, 57))
        out.append(histogram)
    return out


def test_damaged_directory_is_skipped_and_the_rest_read() -> None:
    top, inner = _two_histograms()
    data = bytearray(to_bytes([top, inner]))
    with uproot.open(io.BytesIO(bytes(data))) as file:
        directory = file["dir"]
        start, length = directory.fSeekKeys, directory._fNbytesKeys  # noqa: SLF001
    data[start : start + length] = b"\x7f" * length  # the subdirectory's key list
    result = read_histograms(bytes(data))
    assert list(result.histograms) == ["top"]
    assert_identical(result.histograms["top"], top)
    assert [(s.path, s.class_name) for s in result.skipped] == [("dir", "TDirectory")]
    assert result.skipped[0].reason.startswith("unreadable directory")


def test_damaged_histogram_is_skipped_and_the_rest_read() -> None:
    top, inner = _two_histograms()
    data = bytearray(to_bytes([top, inner]))
    with uproot.open(io.BytesIO(bytes(data))) as file:
        key = file.key("top")
        assert key.is_compressed
        start, end = key.fSeekKey + key._fKeylen + 9, key.fSeekKey + key._fNbytes  # noqa: SLF001
    data[start:end] = bytes(end - start)  # zero the compressed payload, keep its header
    result = read_histograms(bytes(data))
    assert list(result.histograms) == ["dir/inner"]
    assert_identical(result.histograms["dir/inner"], inner)
    assert [(s.path, s.class_name) for s in result.skipped] == [("top", "TH1D")]
    assert result.skipped[0].reason.startswith("unreadable")
