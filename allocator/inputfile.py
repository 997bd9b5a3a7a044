"""Reading an input file (a run snapshot or a workbook) without trusting it.

Every reader of a planner's file goes through :func:`read_input_file` and, for JSON,
:func:`parse_json`, so that ``allocator solve``, ``allocator import``, the dashboard's upload
and the API refuse the same things (run-snapshot.md, "Limits"):

- anything that is not a regular file: a folder, a named pipe (reading one waits forever for
  a writer), a device such as ``/dev/zero`` (reading it never ends);
- a file larger than the limit, 200 MB unless ``ALLOCATOR_MAX_INPUT_MB`` says otherwise;
- JSON with a key repeated in one object (a JSON reader keeps one of the two silently), or
  nested deeper than a run snapshot needs (a deep enough file exhausts Python's stack).

Problems are raised as :class:`~allocator.snapshot.SnapshotError`, each message in the
planner's words and naming the file or the entry.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from allocator.snapshot import SnapshotError, entry_label, not_an_object

__all__ = [
    "DEFAULT_MAX_INPUT_MB",
    "MAX_JSON_DEPTH",
    "max_input_bytes",
    "parse_json",
    "read_input_file",
]

#: The default size limit of an input file, in megabytes (10^6 bytes).
DEFAULT_MAX_INPUT_MB = 200

#: How deep a run snapshot nests: the top object (1), a list such as ``workers`` (2), one of
#: its entries (3) and an id list such as ``qualification_ids`` (4). Anything deeper is not a
#: snapshot, and refusing it early keeps a hostile file from exhausting the stack.
MAX_JSON_DEPTH = 4

_READ_CHUNK = 1 << 20
# Past this many problems a planner needs the first ones fixed, not a longer list.
_MAX_MESSAGES = 100


def max_input_bytes() -> int:
    """The size limit in bytes: ``ALLOCATOR_MAX_INPUT_MB`` (environment, .env, secrets.toml)."""
    from pydantic import ValidationError

    from allocator.config import get_settings

    try:
        mb = get_settings().max_input_mb
    except ValidationError as exc:
        bad = [e for e in exc.errors(include_url=False) if "max_input_mb" in str(e["loc"]).lower()]
        if bad:
            raise SnapshotError(
                [f"ALLOCATOR_MAX_INPUT_MB: {bad[0]['msg']} (it is the largest input file, in MB)"]
            ) from None
        return DEFAULT_MAX_INPUT_MB * 1_000_000  # another setting is wrong: its command says so
    return int(mb * 1_000_000)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:,.1f} MB" if n >= 100_000 else f"{n:,} bytes"


def read_input_file(path: str | Path, *, max_bytes: int | None = None, label: str | None = None) -> bytes:
    """The whole content of a regular file of at most ``max_bytes``.

    Parameters
    ----------
    path
        The file to read.
    max_bytes
        The size limit; default :func:`max_input_bytes`.
    label
        How messages name the file (default its path): an upload's own name, say, rather
        than the temporary file it was saved to.

    Raises
    ------
    SnapshotError
        The file does not exist, cannot be read, is not a regular file, or is too large.
    """
    path = Path(path)
    p = label if label is not None else str(path)
    limit = max_input_bytes() if max_bytes is None else max_bytes
    try:
        # O_NONBLOCK: opening a named pipe would otherwise wait for a writer, for ever.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise SnapshotError([f"File not found: {p}"]) from None
    except IsADirectoryError:
        raise SnapshotError([f"{p} is a folder, not a file."]) from None
    except OSError as exc:
        raise SnapshotError([f"Cannot read {p}: {exc.strerror or exc}"]) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SnapshotError(
                [f"{p} is {_kind(info.st_mode)}, not a regular file; save the input as a file and give that."]
            )
        if info.st_size > limit:
            raise SnapshotError([_too_large(p, info.st_size, limit)])
        chunks: list[bytes] = []
        total = 0
        while True:
            # Read at most one byte past the limit: a file that grows while read is caught too.
            chunk = os.read(fd, min(_READ_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise SnapshotError([_too_large(p, total, limit)])
        return b"".join(chunks)
    except OSError as exc:
        raise SnapshotError([f"Cannot read {p}: {exc.strerror or exc}"]) from None
    finally:
        os.close(fd)


def _too_large(p: str, size: int, limit: int) -> str:
    return (
        f"{p} is {_megabytes(size)}, more than the {_megabytes(limit)} an input file may be. "
        "Split the run, or raise ALLOCATOR_MAX_INPUT_MB if the file is right."
    )


class _Object(dict):
    """A JSON object that repeated a key; ``repeated`` names the keys."""

    repeated: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _Object(obj)
    seen: set[str] = set()
    marked.repeated = []
    for key, _ in pairs:
        if key in seen and key not in marked.repeated:
            marked.repeated.append(key)
        seen.add(key)
    return marked


def parse_json(text: str | bytes) -> Any:
    """Parse JSON text, refusing repeated keys and nesting deeper than a snapshot needs.

    Raises
    ------
    SnapshotError
        Not JSON (with line and column), too deep, or a repeated key; each message names
        the entry (``workers[3] (id 'w4'): the key 'name' appears more than once``).
    """
    if isinstance(text, bytes):
        if text.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")):
            # "not UTF-8 text (byte 11 ...)" would say nothing of what the file is.
            raise SnapshotError(
                ["The file is an Excel workbook (or another zip file), not a JSON snapshot. "
                 "`allocator import` reads workbooks named .xlsx; `allocator solve` and `explain` "
                 "read JSON only (`allocator export RUN_ID --out run.json` writes an imported run's)."]
            )
        encoding = json.detect_encoding(text)  # as json.loads does: UTF-8, with or without BOM, or UTF-16/32
        try:
            text = text.decode(encoding)
        except UnicodeDecodeError as exc:
            raise SnapshotError(
                [f"The file is not {encoding.upper().removesuffix('-SIG')} text (byte {exc.start + 1} "
                 "cannot be read); save it as UTF-8 JSON."]
            ) from None
    try:
        data = json.loads(text, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        raise SnapshotError(
            [f"The file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."]
        ) from None
    except RecursionError:
        raise SnapshotError(
            [f"The file nests lists and objects far deeper than a run snapshot does (at most {MAX_JSON_DEPTH} levels)."]
        ) from None
    except ValueError:  # an integer of thousands of digits (Python refuses to convert it)
        raise SnapshotError([_long_number(text)]) from None
    if not isinstance(data, dict):
        # Said before the structure check: one level more (a snapshot inside a list) is no
        # nesting mistake in every entry, it is the wrong kind of file.
        raise SnapshotError([not_an_object(data)])
    problems = _structure_problems(data)
    if len(problems) > _MAX_MESSAGES:
        problems = [*problems[:_MAX_MESSAGES], f"... and {len(problems) - _MAX_MESSAGES} more problems like these."]
    if problems:
        raise SnapshotError(problems)
    return data


def _long_number(text: str) -> str:
    m = re.search(r"\d{1000,}", text)
    at = ""
    if m:
        line = text.count("\n", 0, m.start()) + 1
        column = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
        at = f" at line {line}, column {column}"
    return (
        f"The file holds a number of thousands of digits{at}; no count, rank or weighting of a "
        "run comes near that (places are at most 1,000,000, ranks and weightings at most 10^9)."
    )


def _where(path: tuple[Any, ...], root: Any) -> str:
    if not path:
        return "The snapshot"
    if len(path) >= 2 and isinstance(path[0], str) and isinstance(path[1], int):
        head = entry_label(path[0], path[1], root)
        rest = path[2:]
    else:
        head, rest = str(path[0]), path[1:]
    for p in rest:
        head += f"[{p}]" if isinstance(p, int) else f".{p}"
    return head


def _fine(root: Any) -> bool:
    """No repeated key and no nesting too deep: one pass, level by level, without paths."""
    level, depth = [root], 1
    while level:
        if depth > MAX_JSON_DEPTH:
            return False
        deeper = []
        for node in level:
            if type(node) is _Object:
                return False
            deeper.extend(v for v in (node.values() if isinstance(node, dict) else node) if isinstance(v, dict | list))
        level, depth = deeper, depth + 1
    return True


def _structure_problems(root: Any) -> list[str]:
    """Repeated keys and too-deep nesting, found without recursion (the input may be hostile)."""
    if not isinstance(root, dict | list) or _fine(root):
        return []
    # Something is wrong: walk again, keeping paths, to name each entry.
    problems: list[str] = []
    stack: list[tuple[Any, tuple[Any, ...], int]] = [(root, (), 1)]
    while stack:
        node, path, depth = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            problems.append(
                f"{_where(path, root)}: a {'list' if isinstance(node, list) else 'JSON object'} "
                "nested deeper than a run snapshot has (an id or a number belongs here)"
            )
            continue
        if isinstance(node, _Object):
            for key in node.repeated:
                problems.append(
                    f"{_where(path, root)}: the key {key!r} appears more than once in one object; "
                    "keep one (a JSON reader would silently keep the last)"
                )
        items = node.items() if isinstance(node, dict) else enumerate(node)
        children = [(v, (*path, k), depth + 1) for k, v in items if isinstance(v, dict | list)]
        stack.extend(reversed(children))
    return problems
