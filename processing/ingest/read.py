"""Read one snapshot file once, straight into a layout and a flat buffer.

Why not uproot for everything: uproot builds a Python model of every member of
every object, about a millisecond per histogram, while between two snapshots
of a producer only the numbers change. So the file structure is read by
:mod:`processing.ingest.rootfile` (header, directories, key lists, object
bytes) and each histogram's bytes are walked by :mod:`processing.ingest.decode`,
which says where its numbers are and gives the rest of its bytes as a
*signature*. The first time a signature is seen the histogram goes through
uproot and ``rootio.from_uproot`` (the one reference conversion); its
:class:`~processing.ingest.cache.Entry` is remembered under that signature
once the decoded numbers equal uproot's bit for bit. Later snapshots copy the
numbers of a known signature from the bytes into the buffer, with no uproot
at all; when a path's bytes match its previous signature even the walk is
skipped. Anything :mod:`decode` does not handle (another class or version, an
inconsistent length, a file structure :mod:`rootfile` does not read) goes
through uproot as before: errors skip that one histogram with a note, as
``read_histograms`` does, and a damaged directory is noted by uproot's reading
of the file. Objects that are not histograms (graphs, stacks, ...,
:mod:`processing.ingest.objects`) are always read with uproot, which is opened
only when some key needs it.

On the uproot path, the first time a histogram is seen with a given
description (class, axes, titles, flags) its entry is also remembered under a
signature built from the raw uproot members, so a histogram uproot must read
every time is at least not converted every time.

uproot opens files with its memory-mapped source rather than its default
(fsspec, which opens and reads the file again for every object): the same
deserialisation, measured 6-9 % faster on a 500-histogram snapshot. Snapshots
are never edited in place (they appear by rename), so the mapping is safe.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import uproot

from overwatch import rootio, rootjson
from overwatch.histogram import PROFILE_STAT_NAMES, STAT_NAMES, dimension_of
from overwatch.rootio import RootFileError, SkippedObject
from processing.ingest import decode, objects, rootfile
from processing.ingest.cache_layout import Entry, Layout, remember_layout
from processing.ingest.objects import ObjectRecord

log = logging.getLogger(__name__)

_RANGE_NAMES = {1: ("fYmin", "fYmax"), 2: ("fZmin", "fZmax"), 3: ("fTmin", "fTmax")}
_KEEP = 50_000  # remembered signatures; titles that change every snapshot must not grow memory
NOT_DRAWABLE = "not drawable"  # a tree, a parameter: nothing to show


@dataclass
class EncodedSnapshot:
    """The raw (as sent) content of one snapshot in cache form."""

    layout: Layout
    raw: np.ndarray
    skipped: list[SkippedObject] = field(default_factory=list)
    #: Graphs, functions, stacks... (their parts, if any, are in the layout).
    objects: list[ObjectRecord] = field(default_factory=list)

    @property
    def unreadable(self) -> list[SkippedObject]:
        """Objects that could not be read (not those that cannot be drawn, e.g. trees)."""
        return [s for s in self.skipped if s.reason != NOT_DRAWABLE]

    @property
    def empty(self) -> bool:
        """Nothing readable at all: no histogram, no other drawable object."""
        return not len(self.layout) and not self.objects


def _check_header(source: str | Path) -> None:
    """Refuse a file that is not ROOT or is shorter than its header says, with that reason."""
    with open(source, "rb") as stream:
        head = stream.read(20)
        size = os.fstat(stream.fileno()).st_size
    if len(head) < 16 or not head.startswith(b"root"):
        raise RootFileError("not a ROOT file: it does not start with 'root'")
    version = int.from_bytes(head[4:8], "big")
    end = int.from_bytes(head[12:20] if version >= 1_000_000 else head[12:16], "big")
    if end > size:
        raise RootFileError(f"truncated ROOT file: its header says {end} bytes, found {size}")


def _open(source: str | Path):
    try:
        # No object cache: keys made from rootfile.Key all name the top directory as parent,
        # so uproot's cache (keyed by parent path, name and cycle) could mix them up.
        return uproot.open(str(source), handler=uproot.source.file.MemmapSource, object_cache=None)
    except FileNotFoundError:
        raise
    except Exception as error:  # uproot raises many types for damaged files
        raise RootFileError(f"{source} is not a readable ROOT file: {error}") from error


def _array(value) -> np.ndarray | None:
    if value is None or len(value) == 0:
        return None
    return np.asarray(value, dtype=np.float64)


def _labels(raw) -> tuple | None:
    if raw is None or len(raw) == 0:
        return None
    return tuple((int(item.member("@fUniqueID")), str(item)) for item in raw)


class _Unopened(Exception):
    """uproot cannot open the file (or it is gone): the whole file fails, not one object."""

    def __init__(self, error: RootFileError | FileNotFoundError) -> None:
        super().__init__(str(error))
        self.error = error


class _Models:
    """uproot models of a snapshot's keys; the file is opened only when one is asked for."""

    def __init__(self, source: str | Path) -> None:
        self.source = source
        self._file = None
        self.uproot_keys: dict[str, object] | None = None  # when uproot listed the keys

    @property
    def file(self):
        if self._file is None:
            try:
                self._file = _open(self.source)
            except (RootFileError, FileNotFoundError) as error:
                raise _Unopened(error) from error
        return self._file

    def get(self, key: rootfile.Key):
        if self.uproot_keys is not None:
            return self.uproot_keys[key.path].get()
        # The key as uproot reads it from its directory's key list (see rootfile.Key).
        inner = self.file.file
        chunk = inner.chunk(key.listed_at, inner.fEND)
        cursor = uproot.source.cursor.Cursor(key.listed_at)
        return uproot.reading.ReadOnlyKey(chunk, cursor, {}, inner, self.file, True).get()

    def close(self) -> bool:
        """Close the file if it was opened; whether it was."""
        if self._file is None:
            return False
        self._file.close()
        return True


def _uproot_keys(models: _Models, skipped: list[SkippedObject]) -> list[rootfile.Key]:
    """The keys as uproot lists them (for a file :mod:`rootfile` does not read)."""
    file = models.file
    try:
        # A damaged subdirectory is noted in ``skipped`` (its path and why), so
        # the rest of the file is still read and the loss is not silent.
        listed = list(rootio.list_keys(file, skipped=skipped))
    except Exception as error:  # a damaged top directory: the whole file is unusable
        raise RootFileError(f"ROOT directory unreadable: {error}") from error
    models.uproot_keys = dict(listed)
    keys = []
    for path, key in listed:
        sizes = (key._fNbytes, key._fObjlen, key._fKeylen, key._fSeekKey)  # noqa: SLF001
        keys.append(rootfile.Key(path, key.fClassName, key.fCycle, *sizes, listed_at=-1))
    return keys


@dataclass(frozen=True, slots=True)
class _Bulk:
    """A histogram's numbers still in its object bytes, and how to copy them out."""

    program: decode.Program
    payload: bytes


@dataclass
class _Known:
    """What the last snapshot showed of one histogram path (its plan and signature)."""

    plan: decode.Plan
    keylen: int
    signature: bytes
    entry: Entry
    program: decode.Program


class SnapshotEncoder:
    """Converts snapshot files; remembers entries and layouts between files."""

    def __init__(self, *, bulk: bool = True) -> None:
        #: False reads every object with uproot (the reference bulk decoding is tested against).
        self.bulk = bulk
        self._entries: dict[tuple, Entry] = {}
        self._layouts: dict[tuple[str, ...], Layout] = {}
        self._presentations: dict[tuple, str] = {}  # (path, presentation key) -> JSON text
        # (path, class, key length, byte signature) -> Entry, None if bulk decoding disagreed
        self._signatures: dict[tuple, Entry | None] = {}
        self._known: dict[str, _Known] = {}  # path -> the last snapshot's plan of it
        #: Histograms read by bulk decoding, and through uproot, since this encoder was made;
        #: files uproot had to open.
        self.decoded = 0
        self.converted = 0
        self.uproot_files = 0

    def read(self, source: str | Path) -> EncodedSnapshot:
        """Every histogram of a snapshot file; raises RootFileError for an unreadable file."""
        items: list[tuple[Entry, tuple | _Bulk]] = []  # (entry, its numbers)
        skipped: list[SkippedObject] = []
        records: list[ObjectRecord] = []
        _check_header(source)
        with open(source, "rb") as stream:
            data = stream.read()
        models = _Models(source)
        try:
            try:
                keys = rootfile.list_keys(data) if self.bulk else None
            except rootfile.FormatError:
                keys = None
            if keys is None:
                keys = _uproot_keys(models, skipped)  # uproot's reading and its messages
            for key in keys:
                class_name, path = key.class_name, key.path
                if not rootio.HISTOGRAM_CLASS.match(class_name):
                    if objects.kind_of(class_name) is None:
                        skipped.append(SkippedObject(path, class_name, NOT_DRAWABLE))
                        continue
                    try:
                        model = models.get(key)
                        records.append(self._object(path, class_name, model, models.file, items))
                    except _Unopened:
                        raise
                    except Exception as error:  # one damaged object must not lose the others
                        log.warning("%s: skipping %s (%s): %s", source, path, class_name, error)
                        skipped.append(SkippedObject(path, class_name, f"unreadable: {error}"))
                    continue
                try:
                    items.append(self._histogram(key, data, models))
                except _Unopened:
                    raise
                except Exception as error:  # one damaged object must not lose the others
                    log.warning("%s: skipping %s (%s): %s", source, path, class_name, error)
                    skipped.append(SkippedObject(path, class_name, f"unreadable: {error}"))
        except _Unopened as unopened:
            raise unopened.error from unopened.error.__cause__
        finally:
            self.uproot_files += models.close()
        layout = self._layout(tuple(entry for entry, _ in items))
        raw = np.empty(layout.size, dtype=np.float64)
        starts = layout.starts.tolist()
        for i, (entry, numbers) in enumerate(items):
            if type(numbers) is _Bulk:
                numbers.program.pack(numbers.payload, raw, starts[i])
            else:
                entry.pack_arrays(layout.block(raw, i), *numbers)
        return EncodedSnapshot(layout, raw, skipped, records)

    def _histogram(
        self, key: rootfile.Key, data: bytes, models: _Models
    ) -> tuple[Entry, tuple | _Bulk]:
        """One histogram's entry and numbers: from its bytes when its signature is known."""
        path = key.path
        try:
            payload = rootfile.object_bytes(data, key) if self.bulk else None
        except rootfile.FormatError:
            payload = None
        plan = whole = None
        if payload is not None and self.bulk:
            known = self._known.get(path)
            if (
                known is not None
                and known.plan.size == len(payload)
                and known.keylen == key.keylen
                and known.plan.class_name == key.class_name
                and known.plan.signature(payload) == known.signature
            ):  # the same as last time but for the numbers: no walk, no lookup
                self.decoded += 1
                return known.entry, _Bulk(known.program, payload)
            try:
                plan = decode.plan(key.class_name, payload)
            except decode.Unknown:
                plan = None
        if plan is not None:
            signature = plan.signature(payload)
            whole = (path, key.class_name, key.keylen, signature)
            entry = self._signatures.get(whole)
            program = plan.program(entry) if entry is not None else None
            if program is not None:
                self._remember(path, _Known(plan, key.keylen, signature, entry, program))
                self.decoded += 1
                return entry, _Bulk(program, payload)
        # First sight of this description, or bytes not decoded here: uproot, as always.
        self.converted += 1
        entry, arrays = self._convert(path, key.class_name, models.get(key), models.file.file)
        if plan is not None and whole not in self._signatures:
            self._learn(whole, plan, payload, entry, arrays)
        return entry, arrays

    def _learn(self, whole: tuple, plan, payload: bytes, entry: Entry, arrays: tuple) -> None:
        """Remember a signature's entry once the decoded numbers equal uproot's, bit for bit."""
        program = plan.program(entry)
        agrees = False
        if program is not None:
            reference, decoded = np.empty(entry.size), np.empty(entry.size)
            entry.pack_arrays(reference, *arrays)
            program.pack(payload, decoded, 0)
            agrees = reference.tobytes() == decoded.tobytes()
        if not agrees:  # never wrong numbers: this description stays with uproot
            log.warning("%s: decoded numbers differ from uproot's; read with uproot", whole[0])
        if len(self._signatures) > _KEEP:
            self._signatures.clear()
        self._signatures[whole] = entry if agrees else None
        if agrees:
            self._remember(whole[0], _Known(plan, whole[2], whole[3], entry, program))

    def _remember(self, path: str, known: _Known) -> None:
        if len(self._known) > _KEEP:
            self._known.clear()
        self._known[path] = known

    def _object(self, path: str, class_name: str, model, file, items: list) -> ObjectRecord:
        """The record of a non-histogram object; its parts join ``items`` as histograms."""
        record, parts = objects.describe(path, class_name, model, file.file)
        converted = []
        for part in parts:
            name = objects.part_path(path, part.name)
            if part.histogram is not None:
                entry = Entry.from_histogram(part.histogram)
                converted.append((entry, _arrays(part.histogram, entry)))
            else:
                converted.append(self._convert(name, part.class_name, part.model, file.file))
        items.extend(converted)  # only once every part is read: all or none
        return record

    def _layout(self, entries: tuple[Entry, ...]) -> Layout:
        key = tuple(e.digest for e in entries)
        layout = self._layouts.get(key)
        if layout is None:
            if len(self._layouts) > 256:
                self._layouts.clear()
            layout = remember_layout(Layout(entries))
            self._layouts[key] = layout
        return layout

    def _presentation(self, path: str, model, file) -> str:
        """The producer's presentation of a histogram, converted once while it stays the same."""
        key = rootjson.presentation_key(model)
        found = self._presentations.get((path, key)) if key is not None else None
        if found is None:
            found = json.dumps(rootjson.presentation(model, file), separators=(",", ":"))
            if key is not None:
                if len(self._presentations) > _KEEP:
                    self._presentations.clear()
                self._presentations[(path, key)] = found
        return found

    def _convert(self, path: str, class_name: str, model, file=None) -> tuple[Entry, tuple]:
        members = model.all_members
        presentation = self._presentation(path, model, file)
        ndim = dimension_of(class_name)
        profile = class_name.startswith("TProfile")
        stat_names = STAT_NAMES[ndim] + (PROFILE_STAT_NAMES[ndim] if profile else ())
        present = tuple(n for n in stat_names if n in members)
        axes = []
        for letter in "XYZ"[:ndim]:
            axis = members[f"f{letter}axis"].all_members
            xbins = axis.get("fXbins")
            axes.append(
                (
                    axis["fNbins"],
                    axis["fXmin"],
                    axis["fXmax"],
                    np.asarray(xbins).tobytes() if xbins is not None and len(xbins) else b"",
                    str(axis.get("fTitle", "")),
                    str(axis.get("fName", "")),
                    _labels(axis.get("fLabels")),
                )
            )
        sumw2 = _array(members.get("fSumw2"))
        bin_entries = _array(members.get("fBinEntries")) if profile else None
        bin_sumw2 = _array(members.get("fBinSumw2")) if profile else None
        extra = ()
        if profile:
            low, high = _RANGE_NAMES[ndim]
            extra = (members.get(low, 0.0), members.get(high, 0.0), members.get("fErrorMode", 0))
        signature = (
            path,
            class_name,
            str(members.get("fTitle", "")),
            tuple(axes),
            present,
            sumw2 is not None,
            bin_sumw2 is not None,
            extra,
            presentation,
        )
        entry = self._entries.get(signature)
        values = rootio._bin_array(model)  # noqa: SLF001 - the reference way to find fArray
        stats = [float(members[n]) for n in present]
        arrays = (values, sumw2, bin_entries, bin_sumw2, float(members["fEntries"]), stats)
        if entry is not None and self._fits(entry, arrays):
            return entry, arrays
        # First sight of this description (or something odd): the reference conversion.
        histogram = rootio.from_uproot(path, model, class_name, presentation=presentation)
        entry = Entry.from_histogram(histogram)
        if len(self._entries) > _KEEP:
            self._entries.clear()
        self._entries[signature] = entry
        return entry, _arrays(histogram, entry)

    @staticmethod
    def _fits(entry: Entry, arrays: tuple) -> bool:
        values, sumw2, bin_entries, bin_sumw2, _, _ = arrays
        n = entry.ncells
        if len(values) != n:
            return False
        return all(a is None or len(a) == n for a in (sumw2, bin_entries, bin_sumw2))


def _arrays(h, entry: Entry) -> tuple:
    """A converted histogram's numbers in the order ``Entry.pack_arrays`` takes them."""
    return (
        h.values.ravel(order="F"),
        None if h.sumw2 is None else h.sumw2.ravel(order="F"),
        None if h.bin_entries is None else h.bin_entries.ravel(order="F"),
        None if h.bin_sumw2 is None else h.bin_sumw2.ravel(order="F"),
        h.entries,
        [h.stats[n] for n in entry.stat_names],
    )
