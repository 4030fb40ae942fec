"""Reading a suite file with bounds: whatever the file holds, the answer comes within a
second, in bounded memory, as data or as one line naming the problem.

- Only regular files (not /dev/zero, a FIFO or a directory), at most MAX_BYTES.
- YAML aliases (*name) are refused: one alias can expand to gigabytes ("billion laughs"),
  and a suite never needs one (use `defaults:` or `matrix:`). Anchors alone are harmless.
- Nesting at most MAX_DEPTH levels (a suite needs four or five).
- A key given twice in one mapping is refused (YAML would keep the last in silence).
- Only plain values: null, booleans, numbers, strings, lists and mappings. Dates are read as
  strings (no suite value is a date, and `2001-13-45` would not construct), the tags of other
  types (!!timestamp, !!binary, !!set, !!omap, !!pairs) are refused, and a number of more than
  MAX_NUMBER_CHARS characters is refused before Python converts it (a long one costs quadratic
  time, and Python refuses to print an integer of more than 4300 digits).
- Whatever a value's construction raises (`!!float x`, `!!int 0x`) is one line naming the file.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from harness.core.errors import UsageError

MAX_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_NUMBER_CHARS = 100
_TAG = "tag:yaml.org,2002:"
# What PyYAML raises, besides YAMLError, when a scalar does not construct as its tag says.
_CONSTRUCTION_ERRORS = (ValueError, OverflowError, TypeError, KeyError, AttributeError, IndexError)


class _Refused(yaml.YAMLError):
    def __init__(self, mark, problem: str):
        super().__init__(problem)
        self.problem_mark = mark
        self.problem = problem


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with aliases, deep nesting, duplicate keys, long numbers and the tags of
    non-plain types refused, and dates left as strings (see the module's docstring)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise _Refused(self.peek_event().start_mark,
                           "YAML aliases (*name) are not allowed in suite files; use defaults: or matrix:")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(self.peek_event().start_mark, f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except _CONSTRUCTION_ERRORS as exc:  # at the value that failed, so the error has its line
            what = repr(_cut(node.value)) if isinstance(node.value, str) else "the value"
            raise _Refused(node.start_mark, f"cannot read {what} as {node.tag.replace(_TAG, '!!')} "
                                            f"({_cut(str(exc))})") from None

    def construct_number(self, node):
        if isinstance(node.value, str) and len(node.value) > MAX_NUMBER_CHARS:
            raise _Refused(node.start_mark, f"a number of {len(node.value)} characters is too long "
                                            f"(at most {MAX_NUMBER_CHARS})")
        if node.tag == _TAG + "int":
            return self.construct_yaml_int(node)
        return self.construct_yaml_float(node)

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            raise _Refused(node.start_mark, f"expected a mapping for {node.tag.replace(_TAG, '!!')}")
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the constructor below says so
                continue
            if duplicate:
                raise _Refused(key_node.start_mark, f"key {key!r} given twice")
            seen.add(key)
        return super().construct_mapping(node, deep)


def _refuse_tag(loader, node):
    raise _Refused(node.start_mark, f"the tag {node.tag.replace(_TAG, '!!')} is not allowed in suite files "
                                    "(only plain values: numbers, strings, lists, mappings)")


def _cut(text: str, limit: int = 60) -> str:
    """Text cut to `limit` characters, so an error stays one readable line."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


# No implicit dates: `2001-12-14` stays the string it looks like.
BoundedLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TAG + "timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _name in ("timestamp", "binary", "set", "omap", "pairs"):
    BoundedLoader.add_constructor(_TAG + _name, _refuse_tag)
BoundedLoader.add_constructor(_TAG + "int", BoundedLoader.construct_number)
BoundedLoader.add_constructor(_TAG + "float", BoundedLoader.construct_number)


def read(path: Path):
    """The parsed YAML of a suite file, or UsageError naming the file and the problem."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the suite file ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{path}: not a regular file (a suite is a YAML file)")
    if info.st_size > MAX_BYTES:
        raise UsageError(f"{path}: {info.st_size} bytes is too big for a suite file (at most {MAX_BYTES})")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise UsageError(f"{path}: more than {MAX_BYTES} bytes is too big for a suite file")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the suite file ({exc.__class__.__name__}: "
                         f"{getattr(exc, 'strerror', None) or exc})") from None
    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        what = problem if isinstance(exc, _Refused) else f"not valid YAML: {problem}"
        raise UsageError(f"{path}:{where}: {what}") from None
    except RecursionError:
        raise UsageError(f"{path}: nested too deeply to read") from None
    except _CONSTRUCTION_ERRORS as exc:  # one raised outside any value (a mapping's own construction)
        raise UsageError(f"{path}: not a valid suite file ({type(exc).__name__}: {_cut(str(exc), 120)})") from None
