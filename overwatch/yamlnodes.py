"""Reading composed YAML nodes with errors that name the file, the line and the key.

``yaml.compose`` keeps each node's position (``start_mark``), which a plain
``yaml.safe_load`` throws away; :class:`NodeReader` walks those nodes and
turns every problem (wrong type, unknown or duplicate key) into a
:class:`YamlFileError` pointing at the offending line. Shared by every YAML
file a person edits (``checks.yaml`` in processing, the web's layouts); each
reader passes its own subclass of the error so callers can tell them apart.
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_YAML11_EXPONENT = re.compile(r"^[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+$")


class YamlFileError(ValueError):
    """An invalid YAML file; names the file, the line (1-based) and the dotted key."""

    def __init__(self, file: str, line: int, key: str, message: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        where = f"{file}:{line}: " + (f"{key}: " if key else "")
        super().__init__(where + message)


class NodeReader:
    """Walks composed YAML nodes, turning every problem into a ``YamlFileError`` (or ``error``)."""

    def __init__(self, source: str, error: type[YamlFileError] = YamlFileError) -> None:
        self.source = source
        self._error = error
        self._constructor = SafeConstructor()

    def error(self, node: Node | None, key: str, message: str) -> YamlFileError:
        line = node.start_mark.line + 1 if node is not None else 1
        return self._error(self.source, line, key, message)

    def mapping(
        self, node: Node, key: str, allowed: tuple[str, ...] | None, what: str
    ) -> dict[str, tuple[Node, Node]]:
        """A mapping's items by key, refusing duplicates and (if ``allowed``) unknown keys."""
        if not isinstance(node, MappingNode):
            raise self.error(node, key, f"expected a mapping ({what}), got {self._show(node)}")
        items: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            name = self.scalar(key_node, key)
            if not isinstance(name, str):
                raise self.error(key_node, key, f"keys must be names, got {name!r}")
            dotted = f"{key}.{name}" if key else name
            if name in items:
                first = items[name][0].start_mark.line + 1
                raise self.error(key_node, dotted, f"duplicate key (first given on line {first})")
            if allowed is not None and name not in allowed:
                raise self.error(key_node, dotted, f"unknown key{suggest(name, allowed)}")
            items[name] = (key_node, value_node)
        return items

    def scalar(self, node: Node, key: str) -> Any:
        if not isinstance(node, ScalarNode):
            raise self.error(node, key, f"expected a single value, got {self._show(node)}")
        return self._constructor.construct_object(node)

    def string(self, node: Node, key: str, *, empty: bool = False) -> str:
        value = self.scalar(node, key)
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self.error(node, key, f"expected a non-empty string, got {value!r}")
        return value

    def boolean(self, node: Node, key: str) -> bool:
        value = self.scalar(node, key)
        if not isinstance(value, bool):
            raise self.error(node, key, f"expected true or false, got {value!r}")
        return value

    def number(self, node: Node, key: str) -> float:
        value = self.scalar(node, key)
        if isinstance(value, str) and _YAML11_EXPONENT.match(value):
            value = float(value)  # YAML 1.1 reads 1e-6 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(node, key, f"expected a number, got {value!r}")
        if math.isnan(value):
            raise self.error(node, key, "expected a number, got .nan")
        return float(value)

    def integer(self, node: Node, key: str) -> int:
        value = self.scalar(node, key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(node, key, f"expected an integer, got {value!r}")
        return value

    def sequence(self, node: Node, key: str, what: str) -> list[Node]:
        """The entries of a list (``what`` names them in the error)."""
        if not isinstance(node, SequenceNode):
            raise self.error(node, key, f"expected a list of {what}, got {self._show(node)}")
        return list(node.value)

    @staticmethod
    def _show(node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        return repr(node.value)


def suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{hint} (known: {', '.join(choices)})"


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def compose(text: str, source: str, error: type[YamlFileError] = YamlFileError) -> Node | None:
    """The document's root node (None for an empty document); bad YAML is ``error`` with its line."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise error(source, line, "", f"not valid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise error(source, 1, "", f"not valid YAML: {exc}") from exc


def read_text(path: str | Path, what: str, error: type[YamlFileError] = YamlFileError) -> str:
    """A file's text; an unreadable file is ``error`` (line 0) saying which ``what`` it is."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(str(path), 0, "", f"the {what} is not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise error(str(path), 0, "", f"cannot read the {what} ({exc.strerror})") from exc
