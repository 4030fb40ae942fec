"""Reading a suite file with bounds: whatever the file holds, the answer comes within a
second, in bounded memory, as data or as one line naming the problem.

- Only regular files (not /dev/zero, a FIFO or a directory), at most MAX_BYTES.
- YAML aliases (*name) are refused: one alias can expand to gigabytes ("billion laughs"),
  and a suite never needs one (use `defaults:` or `matrix:`). Anchors alone are harmless.
- Nesting at most MAX_DEPTH levels (a suite needs four or five).
- A key given twice in one mapping is refused (YAML would keep the last in silence).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from harness.core.errors import UsageError

MAX_BYTES = 1_000_000
MAX_DEPTH = 32


class _Refused(yaml.YAMLError):
    def __init__(self, mark, problem: str):
        super().__init__(problem)
        self.problem_mark = mark
        self.problem = problem


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with aliases, deep nesting and duplicate keys refused."""

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

    def construct_mapping(self, node, deep=False):
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
