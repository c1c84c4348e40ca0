"""Reading composed YAML nodes with errors that name the file, the line and the key.

``yaml.compose`` keeps each node's position (``start_mark``), which a plain
``yaml.safe_load`` throws away; :class:`NodeReader` walks those nodes and
turns every problem (wrong type, unknown or duplicate key) into a
:class:`CheckConfigError` pointing at the offending line.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_YAML11_EXPONENT = re.compile(r"^[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+$")


class CheckConfigError(ValueError):
    """An invalid checks file; names the file, the line (1-based) and the dotted key."""

    def __init__(self, file: str, line: int, key: str, message: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        where = f"{file}:{line}: " + (f"{key}: " if key else "")
        super().__init__(where + message)


class NodeReader:
    """Walks composed YAML nodes, turning every problem into a CheckConfigError."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._constructor = SafeConstructor()

    def error(self, node: Node | None, key: str, message: str) -> CheckConfigError:
        line = node.start_mark.line + 1 if node is not None else 1
        return CheckConfigError(self.source, line, key, message)

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
