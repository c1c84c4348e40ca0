"""Dashboard layouts: YAML files of tabs and items, validated, re-read when they change.

A layout is one ``<name>.yaml`` file in the layouts folder (``web.layouts_dir``;
"" is the shipped ``config/layouts/``). Its name (in URLs) is the file stem:
1 to 64 ASCII letters, digits, ``_`` or ``-``, starting with a letter or digit.
The documented example of the format is ``config/layouts/overview.yaml``::

    name: EMC overview              # the title shown (required)
    description: what it is for     # optional
    tabs:                           # required, at least one
      - name: Main                  # unique within the layout
        columns: 3                  # plots per row, 1 or more
        cycle_seconds: 30           # optional: go to the next tab after 30 s
    items:                          # required, at least one
      - subsystem: EMC              # a subsystem name (EMC, TPC, HLT, ...)
        histogram: "EMCal/SM0*/cellHits"  # a path, or a glob (overwatch.globs:
                                    # ``*`` also crosses "/")
        title: Cell hits            # optional caption (a glob's matches add their path)
        draw_option: logy           # optional JSROOT option, merged with the plugin's
        reference: true             # optional: compare with the reference run
        tab: Main                   # optional: the tab it is on (default: the first)

Every problem (bad YAML, unknown or duplicate key, wrong type, missing key, an
item on a tab that does not exist, a bad file name) is a :class:`LayoutError`
naming the file, the line and the dotted key, like ``checks.yaml``'s errors
(the same reader, :mod:`overwatch.yamlnodes`). A broken file is reported on
its own; every other layout still serves.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from yaml.nodes import Node

from overwatch.globs import compile_glob, is_glob
from overwatch.names import is_subsystem
from overwatch.yamlnodes import NodeReader, YamlFileError, compose, is_null, read_text

__all__ = [
    "LAYOUT_NAME",
    "Item",
    "Layout",
    "LayoutError",
    "LayoutFolder",
    "Tab",
    "load_layout",
    "parse_layout",
]

#: What a layout's file stem (its name in URLs) may be.
LAYOUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
SUFFIX = ".yaml"
_TOP_KEYS = ("name", "description", "tabs", "items")
_TAB_KEYS = ("name", "columns", "cycle_seconds")
_ITEM_KEYS = ("subsystem", "histogram", "title", "draw_option", "reference", "tab")


class LayoutError(YamlFileError):
    """An invalid layout file; names the file, the line (1-based) and the dotted key."""


@dataclass(frozen=True)
class Tab:
    name: str
    columns: int
    cycle_seconds: float | None = None


@dataclass(frozen=True)
class Item:
    """One entry of ``items``: which histograms of which subsystem, drawn how, on which tab."""

    subsystem: str
    histogram: str
    tab: str
    title: str = ""
    draw_option: str = ""
    reference: bool = False
    line: int = 0
    matcher: re.Pattern[str] = field(default=re.compile(""), repr=False, compare=False)

    @property
    def is_glob(self) -> bool:
        return is_glob(self.histogram)

    def select(self, paths: list[str]) -> list[str]:
        """The paths this item shows, in the order given (the view's order)."""
        if not self.is_glob:
            return [self.histogram] if self.histogram in paths else []
        return [path for path in paths if self.matcher.fullmatch(path)]


@dataclass(frozen=True)
class Layout:
    name: str  # the file stem
    title: str
    description: str
    tabs: tuple[Tab, ...]
    items: tuple[Item, ...]
    source: str

    def tab(self, name: str | None) -> Tab | None:
        """The tab called ``name`` (None or "": the first); None if there is none such."""
        if not name:
            return self.tabs[0]
        return next((tab for tab in self.tabs if tab.name == name), None)

    def items_on(self, tab: Tab) -> list[Item]:
        return [item for item in self.items if item.tab == tab.name]

    def subsystems(self) -> list[str]:
        return sorted({item.subsystem for item in self.items})


# --------------------------------------------------------------------------- parsing


def _required(reader: NodeReader, items: dict, node: Node, key: str, name: str, what: str) -> Node:
    if name not in items:
        dotted = f"{key}.{name}" if key else name
        raise reader.error(node, dotted, f"missing key '{name}' ({what})")
    return items[name][1]


def _tabs(reader: NodeReader, node: Node) -> tuple[Tab, ...]:
    entries = reader.sequence(node, "tabs", "tabs")
    if not entries:
        raise reader.error(node, "tabs", "expected at least one tab")
    tabs: list[Tab] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        key = f"tabs[{index}]"
        items = reader.mapping(entry, key, _TAB_KEYS, "a tab")
        name_node = _required(reader, items, entry, key, "name", "the tab's name")
        name = reader.string(name_node, f"{key}.name")
        if name in seen:
            raise reader.error(
                name_node, f"{key}.name", f"duplicate tab '{name}' (first on line {seen[name]})"
            )
        seen[name] = name_node.start_mark.line + 1
        columns_node = _required(reader, items, entry, key, "columns", "plots per row")
        columns = reader.integer(columns_node, f"{key}.columns")
        if columns < 1:
            raise reader.error(columns_node, f"{key}.columns", f"must be 1 or more, got {columns}")
        cycle = None
        if "cycle_seconds" in items:
            cycle_node = items["cycle_seconds"][1]
            cycle = reader.number(cycle_node, f"{key}.cycle_seconds")
            if not 0 < cycle < float("inf"):
                raise reader.error(
                    cycle_node, f"{key}.cycle_seconds", f"must be more than 0, got {cycle:g}"
                )
        tabs.append(Tab(name, columns, cycle))
    return tuple(tabs)


def _item(reader: NodeReader, entry: Node, key: str, tabs: tuple[Tab, ...]) -> Item:
    items = reader.mapping(entry, key, _ITEM_KEYS, "an item")
    subsystem_node = _required(reader, items, entry, key, "subsystem", "e.g. EMC")
    subsystem = reader.string(subsystem_node, f"{key}.subsystem")
    if not is_subsystem(subsystem):
        raise reader.error(
            subsystem_node,
            f"{key}.subsystem",
            f"{subsystem!r} is not a subsystem name (1 to 32 ASCII letters and digits)",
        )
    histogram_node = _required(reader, items, entry, key, "histogram", "a path or a glob")
    histogram = reader.string(histogram_node, f"{key}.histogram")
    text = {
        name: reader.string(items[name][1], f"{key}.{name}", empty=True) if name in items else ""
        for name in ("title", "draw_option")
    }
    reference = (
        reader.boolean(items["reference"][1], f"{key}.reference") if "reference" in items else False
    )
    tab = tabs[0].name
    if "tab" in items:
        tab_node = items["tab"][1]
        tab = reader.string(tab_node, f"{key}.tab")
        names = [t.name for t in tabs]
        if tab not in names:
            raise reader.error(
                tab_node, f"{key}.tab", f"no tab '{tab}' in this layout (tabs: {', '.join(names)})"
            )
    return Item(
        subsystem=subsystem,
        histogram=histogram,
        tab=tab,
        title=text["title"].strip(),
        draw_option=text["draw_option"].strip(),
        reference=reference,
        line=entry.start_mark.line + 1,
        matcher=compile_glob(histogram),
    )


def parse_layout(text: str, name: str, source: str = "<layout>") -> Layout:
    """Validate one layout document; raises :class:`LayoutError` on the first problem."""
    if not LAYOUT_NAME.fullmatch(name):
        raise LayoutError(
            source, 1, "", f"bad layout name {name!r}: rename the file to letters, digits, _ or - "
            f"(at most 64, starting with a letter or digit) and {SUFFIX}",
        )  # fmt: skip
    reader = NodeReader(source, LayoutError)
    root = compose(text, source, LayoutError)
    if root is None or is_null(root):
        raise LayoutError(source, 1, "", "the file is empty: a layout needs name, tabs and items")
    top = reader.mapping(root, "", _TOP_KEYS, "a layout: name, description, tabs, items")
    title = reader.string(_required(reader, top, root, "", "name", "the title shown"), "name")
    description = ""
    if "description" in top:
        description = reader.string(top["description"][1], "description", empty=True)
    tabs = _tabs(reader, _required(reader, top, root, "", "tabs", "a list of tabs"))
    items_node = _required(reader, top, root, "", "items", "a list of items")
    entries = reader.sequence(items_node, "items", "items")
    if not entries:
        raise reader.error(items_node, "items", "expected at least one item")
    items = tuple(_item(reader, entry, f"items[{i}]", tabs) for i, entry in enumerate(entries))
    return Layout(name, title.strip(), description.strip(), tabs, items, source)


def load_layout(path: str | Path) -> Layout:
    """Read and validate one layout file (its name is the file stem)."""
    path = Path(path)
    return parse_layout(read_text(path, "layout file", LayoutError), path.stem, str(path))


# --------------------------------------------------------------------------- the folder


class LayoutFolder:
    """The layouts of one folder, each re-read when its file changes (mtime and size).

    Why no watcher: a folder of a few small files is listed and stat-ed in
    microseconds per request, and a plain check works the same in every
    gunicorn worker without a thread of its own.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._parsed: dict[Path, tuple[tuple[int, ...], Layout | LayoutError]] = {}
        self._lock = threading.Lock()

    def _files(self) -> dict[str, Path]:
        try:
            found = sorted(self.folder.glob(f"*{SUFFIX}"))
        except OSError:
            return {}
        return {path.stem: path for path in found if path.is_file()}

    def _load(self, path: Path) -> Layout | LayoutError:
        try:
            stat = path.stat()
        except OSError as error:
            return LayoutError(str(path), 0, "", f"cannot read the layout file ({error.strerror})")
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)  # a rename is a new inode
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            result: Layout | LayoutError = load_layout(path)
        except LayoutError as error:
            result = error
        with self._lock:
            self._parsed[path] = (stamp, result)
        return result

    def names(self) -> list[str]:
        return list(self._files())

    def all(self) -> dict[str, Layout | LayoutError]:
        """Every layout of the folder by name (sorted), a broken one as its error."""
        return {name: self._load(path) for name, path in self._files().items()}

    def get(self, name: str) -> Layout | LayoutError | None:
        """The layout called ``name``, its error if the file is broken, None if there is none."""
        if not LAYOUT_NAME.fullmatch(name):
            return None
        path = self.folder / f"{name}{SUFFIX}"
        if not path.is_file():
            return None
        return self._load(path)
