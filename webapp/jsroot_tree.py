"""A THttpServer-compatible tree under ``/jsroot/``: the stock JSROOT GUI browses Overwatch.

ROOT's web server (THttpServer) answers a small URL scheme that JSROOT's GUI
speaks; this blueprint answers the same scheme over Overwatch's runs, so a
shifter browses and monitors everything with the GUI known from ROOT:

``GET /jsroot/`` (also ``index.htm``)
    the vendored JSROOT GUI in online mode, the top of the tree embedded in the
    page as THttpServer's default page embeds its ``h.json``
    (``templates/jsroot_gui.html``, ``static/jsroot_gui.js``). JSROOT's own URL
    options work: ``?item=Run1/EMC/latest/EMCal/cellHits&monitoring=5000``,
    ``?file=<snapshot URL>``.
``GET /jsroot/h.json``, ``GET /jsroot/<item>/h.json``
    the hierarchy ``Run<N>`` -> subsystem -> views (``cumulative``, ``latest``
    and the subsystem's saved on-demand slices, by id) -> the directories of the
    histogram paths -> objects; beside the views, ``files`` holds the
    subsystem's raw snapshot files (the download list of the API). Nodes carry
    THttpServer's fields: ``_name``, ``_kind`` (``ROOT.<class>`` of an object;
    ``ROOT.Session`` at the top, ``ROOT.TFolder`` for Overwatch's folders,
    ``ROOT.TDirectoryFile`` for a directory of the histogram paths, ``ROOT.TFile``
    for a snapshot file), ``_title``, ``_childs``, ``_realname`` when the name
    had to change, and ``_more`` on a folder whose children are not listed:
    JSROOT asks ``<item>/h.json`` for them when it is expanded.
``GET /jsroot/<item>/root.json`` (``root.json.gz``: always gzip-encoded)
    the object's TBufferJSON exactly as ``/api/runs/<run>/<sys>/histograms/<path>
    ?slice=<view>`` serves it: the same ``webapp.views`` calls, the same cached
    bytes and ETag. ``compact=`` is ignored: JSROOT reads uncompacted JSON.
``GET /jsroot/<item>/item.json``
    the item's node without its children.
``POST /jsroot/multi.json?number=N``
    body: one request a line (``<item>/root.json``, ``item.json`` or ``h.json``),
    answered by a JSON array in the same order, ``null`` for a line with no answer
    (THttpServer's multi request). A browser session sends the ``X-CSRF-Token``
    header like every POST; an API token needs none.
``GET /jsroot/Run<N>/<SYS>/files/<file>.root``
    the raw snapshot file with HTTP ranges, several at once too
    (``multipart/byteranges``, what JSROOT's ``openFile`` asks for; the
    ``/download/`` route answers single ranges only).

Anything else under ``/jsroot/`` is a JSON 404 naming what is missing. The login
or API token is the app's (``webapp.auth.authenticate`` runs before these views).

Decided:

- Item names follow THttpServer: characters that break an item path or URL
  (``- []<>#:&?/'"\\``, and ``%;,``) become ``_``; a name a sibling already
  holds gets ``_0``, ``_1``...; the real name is kept in ``_realname``.
- ``h.json`` of an item lists its children and, breadth first, deeper levels
  while the answer stays under :data:`NODE_BUDGET` nodes; a folder left out is
  marked ``_more``. Runs listed at the top and views are never expanded unless
  asked for: each costs a look-up or a computed view.
- A snapshot file item carries ``_url`` and ``_expand: "OverwatchJsroot.openSnapshot"``
  (with ``_obj: {}``, as JSROOT's own server-directory listing has): the page's
  function opens ``_url`` with JSROOT's ``openFile`` and shows the file's keys in
  place; the file is read by JSROOT over HTTP ranges, never by the server.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, render_template, request, send_file, url_for

import processing
from overwatch import names
from overwatch.lru import LRU
from webapp import queries, views
from webapp.context import overwatch, resources
from webapp.http import GZIP_LEVEL, json_error, json_response
from webapp.paths import UnsafePath, check_path, quote_path, snapshot_file

log = logging.getLogger(__name__)

bp = Blueprint("jsroot_tree", __name__, url_prefix="/jsroot")

#: Nodes one ``h.json`` answer lists at most beyond the asked item's own children.
NODE_BUDGET = 2000
#: Ranges one file request may ask for (JSROOT asks for up to 200 at once).
MAX_RANGES = 1000
FILES = "files"
FILE_EXPAND = "OverwatchJsroot.openSnapshot"
FOLDER, DIRECTORY = "ROOT.TFolder", "ROOT.TDirectoryFile"
#: What THttpServer replaces in item names, and what would break a URL here.
_SPECIAL = re.compile(r"[- \[\]<>#:&?/'\"\\%;,]")
_REQUESTS = frozenset({"h.json", "item.json", "root.json", "multi.json"})
#: The directory tree of each view, by slice id (paths do not change within a slice).
_TREES = LRU(64)


class NoItem(LookupError):
    """No item at a path of the tree; the text names the path."""


# --------------------------------------------------------------------------- nodes


@dataclass
class Node:
    """One item of the tree: what ``h.json`` writes of it and how to reach its children."""

    name: str
    kind: str
    title: str = ""
    realname: str = ""
    folder: bool = False
    #: Children cost a look-up or a computed view: listed only when this node is asked for.
    lazy: bool = False
    fields: dict[str, Any] = field(default_factory=dict)  # further fields (a file's _url)
    load: Callable[[], list[Node]] | None = None
    find: Callable[[str], Node | None] | None = None  # a child by name, without listing all
    object_path: str | None = None  # an object's path in its view
    view: processing.Resolved | None = None  # a view node's view, once its children are listed
    relpath: str | None = None  # a snapshot file's path in the data directory
    _children: list[Node] | None = None
    _index: dict[str, Node] | None = None

    def children(self) -> list[Node]:
        if self._children is None:
            self._children = self.load() if self.load is not None else []
        return self._children

    def child(self, name: str) -> Node | None:
        if self.find is not None and self._children is None:
            return self.find(name)
        if self._index is None:
            self._index = {c.name: c for c in self.children()}
        return self._index.get(name)

    def fields_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"_name": self.name, "_kind": self.kind, "_title": self.title}
        if self.realname:
            data["_realname"] = self.realname
        data.update(self.fields)
        return data


class Names:
    """Unique item names among the children of one node (THttpServer's rule)."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def __call__(self, real: str) -> tuple[str, str]:
        """(item name, real name if it differs, else "")."""
        base = _SPECIAL.sub("_", real) or "_"
        name, count = base, 0
        while name in self.taken:
            name, count = f"{base}_{count}", count + 1
        self.taken.add(name)
        return name, ("" if name == real else real)


def _utc(timestamp: float | None) -> str:
    """As the pages write an instant (the app's ``utc`` filter)."""
    if not timestamp:
        return "–"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def top_node() -> Node:
    return Node(
        "Overwatch", "ROOT.Session", "Overwatch: runs, subsystems, views and snapshot files",
        folder=True, load=_run_nodes, find=_find_run,
    )  # fmt: skip


def _run_nodes() -> list[Node]:
    runs = overwatch().runs
    return [_run_node(runs[number], lazy=True) for number in reversed(list(runs.keys()))]


def _find_run(name: str) -> Node | None:
    number = names.parse_run_dir(name)
    found = overwatch().runs.get(number) if number is not None and names.is_run(number) else None
    return _run_node(found) if found is not None and names.run_dir(number) == name else None


def _run_node(run: Any, lazy: bool = False) -> Node:
    ongoing = run.is_ongoing(time.time(), resources().ongoing_seconds)
    title = f"Run {run.number}: {_utc(run.start)} to {_utc(run.end)}" + (
        ", ongoing" if ongoing else ""
    )
    number, subsystems = run.number, run.subsystems
    return Node(names.run_dir(number), FOLDER, title, folder=True, lazy=lazy,
                load=lambda: [_subsystem_node(number, s) for s in sorted(subsystems)],
                find=lambda s: _subsystem_node(number, s) if s in subsystems else None)  # fmt: skip


def _subsystem_node(run: int, subsystem: str) -> Node:
    sub = queries.get_subsystem(overwatch(), run, subsystem)
    title = f"{subsystem}: {len(sub.snapshots)} snapshots, the last at {_utc(sub.end)}"
    return Node(subsystem, FOLDER, title, folder=True, load=lambda: _view_nodes(run, subsystem),
                find=lambda name: _find_view(run, subsystem, name))  # fmt: skip


_VIEW_TITLES = {
    "cumulative": "the whole run",
    "latest": "the latest slice: between the last two snapshots",
}


def _view_nodes(run: int, subsystem: str) -> list[Node]:
    nodes = [_view_node(run, subsystem, name, _VIEW_TITLES.get(name, name))
             for name in processing.VIEW_NAMES]  # fmt: skip
    requests = _slice_requests()
    found = [r for r in requests.values() if (r.run, r.subsystem) == (run, subsystem)]
    for record in sorted(found, key=lambda record: record.created, reverse=True):
        nodes.append(_saved_slice_node(record))
    return [*nodes, _files_node(run, subsystem)]


def _find_view(run: int, subsystem: str, name: str) -> Node | None:
    """A view by name without listing the subsystem's saved slices."""
    if name in processing.VIEW_NAMES:
        return _view_node(run, subsystem, name, _VIEW_TITLES.get(name, name))
    if name == FILES:
        return _files_node(run, subsystem)
    record = _slice_requests().get(name) if processing.SLICE_ID.match(name) else None
    if record is None or (record.run, record.subsystem) != (run, subsystem):
        return None
    return _saved_slice_node(record)


def _slice_requests() -> Any:
    """The on-demand slices described in ZODB (``OverwatchRoot.slice_requests``), by id.

    No API lists them; they are what any process recomputes a slice id from.
    """
    return getattr(overwatch(), "slice_requests", None) or {}


def _saved_slice_node(record: Any) -> Node:
    start = "the run start" if record.start is None else _utc(record.start)
    options = processing.options_text(sorted(dict(record.options).items()))
    title = f"on-demand slice {record.slice_id}: {start} to {_utc(record.end)}{options}"
    return _view_node(record.run, record.subsystem, record.slice_id, title)


def _files_node(run: int, subsystem: str) -> Node:
    return Node(FILES, FOLDER, f"the raw snapshot files of {subsystem} in run {run}",
                folder=True, load=lambda: _file_nodes(run, subsystem))  # fmt: skip


def _view_node(run: int, subsystem: str, name: str, title: str) -> Node:
    node = Node(name, FOLDER, title, folder=True, lazy=True)
    node.load = lambda: _view_tree(node, run, subsystem, name)
    return node


def _view_tree(node: Node, run: int, subsystem: str, name: str) -> list[Node]:
    resolved = views.get_view(run, subsystem, name)
    node.view = resolved  # what root.json of an object below answers from
    view = resolved.view
    tree = _TREES.get(view.slice_id)
    if tree is None:
        tree = _build_tree(view)
        _TREES.put(view.slice_id, tree)
    return tree


def _build_tree(view: processing.SliceView) -> list[Node]:
    """The directories and objects of a view's paths, in file order (shared, never changed)."""
    top = Node("", DIRECTORY, folder=True, _children=[])
    namers: dict[int, Names] = {}
    directories: dict[tuple[int, str], Node] = {}
    for path, class_name in view.paths:
        *folders, leaf = path.split("/")
        parent = top
        for segment in folders:
            found = directories.get((id(parent), segment))
            if found is None:
                name, realname = namers.setdefault(id(parent), Names())(segment)
                found = Node(name, DIRECTORY, segment, realname, folder=True, _children=[])
                parent.children().append(found)
                directories[(id(parent), segment)] = found
            parent = found
        name, realname = namers.setdefault(id(parent), Names())(leaf)
        kind = f"ROOT.{class_name}"
        parent.children().append(Node(name, kind, view.title_of(path), realname, object_path=path))
    return top.children()


def _file_nodes(run: int, subsystem: str) -> list[Node]:
    namer = Names()
    base = url_for("jsroot_tree.page")
    nodes = []
    for item in queries.snapshot_files(overwatch(), run, subsystem):
        relpath = item["filename"]
        name, realname = namer(relpath.rsplit("/", 1)[-1])
        title = f"{relpath}, {item['size']} bytes, taken {_utc(item['timestamp'])}"
        url = base + quote_path(f"{names.run_dir(run)}/{subsystem}/{FILES}/{name}")
        fields = {"_url": url, "_expand": FILE_EXPAND, "_obj": {}, "_click_action": "expand"}
        nodes.append(Node(name, "ROOT.TFile", title, realname, fields=fields, relpath=relpath))
    return nodes


def resolve(segments: list[str]) -> tuple[Node, processing.Resolved | None]:
    """The node at an item path (item names) and the view it lies in; NoItem if none."""
    node, view = top_node(), None
    for depth, segment in enumerate(segments):
        found = node.child(segment) if node.folder else None
        if found is None:
            where = "/".join(segments[:depth]) or "the top"
            raise NoItem(f"no item {segment!r} in {where} of the /jsroot/ tree")
        view = node.view or view
        node = found
    return node, view


def hierarchy(node: Node, budget: int | None = None) -> dict[str, Any]:
    """``h.json`` of a node: its children, and deeper levels breadth first within the budget."""
    budget = NODE_BUDGET if budget is None else budget
    data = node.fields_json()
    level, used, first = [(node, data)], 0, True
    while level:
        pending = []
        for item, out in level:
            if not item.folder:
                continue
            if item.lazy and not first:
                out["_more"] = True
                continue
            pending.append((item, out, item.children()))
        size = sum(len(kids) for _, _, kids in pending)
        if not first and used + size > budget:
            for _item, out, kids in pending:
                if kids:
                    out["_more"] = True
            break
        level = []
        for _item, out, kids in pending:
            out["_childs"] = [kid.fields_json() for kid in kids]
            level.extend(zip(kids, out["_childs"], strict=True))
        used, first = used + size, False
    return data


def item_fields(node: Node) -> dict[str, Any]:
    """``item.json``: the node's own fields; ``_more`` says it has children to ask for."""
    data = node.fields_json()
    if node.folder:
        data["_more"] = True
    return data


# --------------------------------------------------------------------------- routes


@bp.errorhandler(LookupError)
def _missing(error: LookupError) -> Response:
    return json_error(str(error), 404)


@bp.errorhandler(UnsafePath)
def _unsafe(error: UnsafePath) -> Response:
    return json_error(f"refused item path: {error}", 400)


@bp.errorhandler(processing.SliceRangeError)
def _gone(error: processing.SliceRangeError) -> Response:
    return json_error(f"slice gone: its snapshots are no longer processed ({error})", 404)


@bp.errorhandler(processing.CacheError)
def _cache(error: processing.CacheError) -> Response:
    log.error("cannot serve %s: %s", request.path, error)
    return json_error(str(error), 500)


@bp.route("/index.htm")
@bp.route("/")  # the first rule: url_for builds it
def page() -> str:
    """The JSROOT GUI, online mode, with the top of the tree embedded."""
    return render_template("jsroot_gui.html", hierarchy=hierarchy(top_node()))


@bp.route("/<path:rest>", methods=["GET", "HEAD", "POST"])
def tree(rest: str) -> Response:
    check_path(rest)
    *segments, last = rest.split("/")
    zipped = last.endswith(".gz")
    request_name = last[:-3] if zipped else last
    if request_name not in _REQUESTS:
        return _raw_file(segments + [last])
    if request.method == "POST" and request_name != "multi.json":
        return json_error(f"POST is not allowed on {request.path}; only on multi.json", 405)
    if request_name == "multi.json":
        response = _multi(segments)
    else:
        response = _answer(*resolve(segments), request_name)
    return _gzipped(response) if zipped else response


def _answer(node: Node, view: processing.Resolved | None, request_name: str) -> Response:
    if request_name == "h.json":
        return json_response(hierarchy(node))
    if request_name == "item.json":
        return json_response(item_fields(node))
    if node.object_path is None or view is None:
        raise NoItem(f"{node.name!r} is a folder or a file, not an object: it has no root.json")
    return views.object_response(view, node.object_path)


def _gzipped(response: Response) -> Response:
    """THttpServer's ``.gz`` requests: the body gzip-encoded whatever the client said it takes."""
    if response.status_code != 200 or response.headers.get("Content-Encoding") == "gzip":
        return response
    response.set_data(gzip.compress(response.get_data(), GZIP_LEVEL, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    response.pre_encoded = True  # webapp.http.compress leaves it alone
    return response


def _multi(segments: list[str]) -> Response:
    lines = [line.strip() for line in request.get_data(as_text=True).splitlines()]
    lines = [line for line in lines if line]
    number = request.args.get("number")
    if not lines:
        return json_error("multi.json needs the requests in the POST body, one a line", 400)
    if number is not None and number != str(len(lines)):
        return json_error(f"number={number} but the body holds {len(lines)} requests", 400)
    resolve(segments)  # a multi request may be relative to an item, as THttpServer allows
    with _unconditional():
        parts = [_multi_part(segments, line) for line in lines]
    body = b"[" + b",\n".join(parts) + b"]"
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _multi_part(segments: list[str], line: str) -> bytes:
    path = line.split("?", 1)[0]
    *item, request_name = path.split("/")
    if request_name.endswith(".gz"):
        request_name = request_name[:-3]
    if request_name not in _REQUESTS - {"multi.json"}:
        return b"null"
    try:
        check_path("/".join([*segments, *item, request_name]))
        response = _answer(*resolve([*segments, *item]), request_name)
    except (LookupError, ValueError, processing.CacheError) as error:
        log.info("multi.json: %s: %s", line, error)
        return b"null"
    data = response.get_data()
    if response.headers.get("Content-Encoding") == "gzip":
        data = gzip.decompress(data)
    return data if response.status_code == 200 else b"null"


@contextmanager
def _unconditional() -> Iterator[None]:
    """The parts of a multi request are answered whole, whatever validator the request held."""
    saved = request.environ.pop("HTTP_IF_NONE_MATCH", None)
    try:
        yield
    finally:
        if saved is not None:
            request.environ["HTTP_IF_NONE_MATCH"] = saved


# --------------------------------------------------------------------------- raw files


def _raw_file(segments: list[str]) -> Response:
    served = "the tree answers h.json, item.json, root.json and multi.json, and files/<file>"
    try:
        node, _view = resolve(segments)
    except NoItem as error:
        raise NoItem(f"nothing at {request.path} ({error}); {served}") from None
    if node.relpath is None:
        raise NoItem(f"nothing at {request.path}: not a snapshot file; {served}")
    target = snapshot_file(resources().data_dir, node.relpath)
    if target is None:
        raise NoItem(f"snapshot file {node.relpath!r} is no longer on disk")
    ranges = byte_ranges(request.headers.get("Range", ""))
    if request.method == "GET" and len(ranges) > 1:
        return _byteranges(target, ranges)
    return send_file(target, mimetype="application/octet-stream", conditional=True, max_age=0)


_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def byte_ranges(header: str) -> list[tuple[int, int | None]]:
    """``(start, stop)`` of each range of a ``Range: bytes=...`` header (stop exclusive or None;
    a suffix ``-N`` is ``(-N, None)``); [] for a header that is not one.

    Werkzeug's parser takes ascending, disjoint ranges only; RFC 9110 allows any order.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        return []
    ranges: list[tuple[int, int | None]] = []
    for text in spec.split(","):
        match = _RANGE.match(text)
        if match is None or match[1] == match[2] == "":
            return []
        first, last = match[1], match[2]
        if first == "":  # the last N bytes; none for N = 0
            ranges.append((-int(last), None) if int(last) else (0, 0))
        elif last == "":
            ranges.append((int(first), None))
        elif int(last) >= int(first):
            ranges.append((int(first), int(last) + 1))
        else:
            return []
    return ranges


def _byteranges(target: Path, ranges: list[tuple[int, int | None]]) -> Response:
    """Several ranges of a file at once (RFC 9110 ``multipart/byteranges``), in the order asked.

    Werkzeug answers one range only; JSROOT asks for many in one request and
    reads the parts in its own order, so they are neither merged nor reordered.
    """
    length = os.stat(target).st_size
    spans = []
    for start, stop in ranges[: MAX_RANGES + 1]:
        if start < 0:  # a suffix: the last -start bytes
            start, stop = max(0, length + start), length
        else:
            stop = length if stop is None else min(stop, length)
        if start < stop:
            spans.append((start, stop))
    if not spans or len(ranges) > MAX_RANGES:
        response = json_error(
            f"none of the {len(ranges)} ranges fits the file's {length} bytes"
            if not spans
            else f"{len(ranges)} ranges asked for at once; at most {MAX_RANGES} are served",
            416,
        )
        response.headers["Content-Range"] = f"bytes */{length}"
        return response
    boundary = secrets.token_hex(16)
    chunks = []
    with open(target, "rb") as stream:
        for start, stop in spans:
            stream.seek(start)
            head = (
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Range: bytes {start}-{stop - 1}/{length}\r\n\r\n"
            )
            chunks += [head.encode("ascii"), stream.read(stop - start)]
    chunks.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
    response = Response(b"".join(chunks), status=206,
                        mimetype=f"multipart/byteranges; boundary={boundary}")  # fmt: skip
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = "no-cache"
    return response
