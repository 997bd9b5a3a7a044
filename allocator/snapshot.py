"""The run snapshot (``allocator-run/1``): one run's whole input, validated once.

Everything that enters the engine (a JSON file, a workbook, a database run) becomes a
:class:`RunSnapshot` first. Validation happens here and only here: each entity checks its own
fields (pydantic, with the Limits of run-snapshot.md: id and name lengths, control characters,
places, magnitudes, numbers that are numbers), then :func:`_check_references` checks the
cross-references, also when some entries failed the first stage (on the entries that passed).
Every problem is reported, not just the first, and every message names the offending entry in
the planner's words, e.g. ``workers[3] (id 'w\\x00'): the id contains a control character (NUL)``.
Files are read through :mod:`allocator.inputfile` (regular files, size, repeated keys, nesting).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from allocator.eligibility import RuleSet

FORMAT = "allocator-run/1"

# -- limits (run-snapshot.md, "Limits") -------------------------------------------------------
# The same for `solve`, `import`, the dashboard's upload and the API, and all checked here,
# before a database sees the input: beyond them PostgreSQL refuses a row (an integer column,
# a NUL in text, an index entry) with a bare error, or the solver's cost scale overflows.

#: The longest id, in characters.
MAX_ID_CHARS = 200
#: The longest name, in characters.
MAX_NAME_CHARS = 500
#: The most places a job line may have (``max_n_workers``).
MAX_PLACES = 1_000_000
#: The largest magnitude of a rank or a weighting value.
MAX_MAGNITUDE = 1e9
#: The largest priority tier (business-rules.md: a whole number of at least 1).
MAX_PRIORITY = 1_000_000

_CONTROL_NAMES = {
    "\x00": "NUL", "\t": "tab", "\n": "line break", "\r": "carriage return", "\x1b": "escape",
    "\x7f": "delete", "\x0b": "vertical tab", "\x0c": "form feed", "\x08": "backspace",
}
_NAME_ALLOWED_CONTROLS = frozenset("\t\n\r")


# Unicode's category Cc is exactly these two ranges: one regex search finds whether a text has
# any, so the character loop below runs only for the rare text that does.
_ANY_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _control_character(text: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """The planner's word for the first control character in ``text`` (not in ``allowed``)."""
    if not _ANY_CONTROL.search(text):
        return None
    for ch in text:
        if ch not in allowed and unicodedata.category(ch) == "Cc":
            return _CONTROL_NAMES.get(ch, f"U+{ord(ch):04X}")
    return None


# Half of a UTF-16 pair: JSON's "\ud800" escape alone reads as one, and no file, database or
# terminal can hold it (UTF-8 has no such character), so it fails at the first write.
_SURROGATE = re.compile("[\ud800-\udfff]")


def broken_text_problem(text: str) -> str | None:
    """Why ``text`` cannot be written anywhere (a predicate), or None: it holds half of a
    UTF-16 pair, as a broken ``\\u`` escape or a command line's bytes that are not UTF-8 give."""
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return (
        f"contains U+{ord(found.group()):04X}, half of a UTF-16 pair, which is no character on its own "
        "(a broken \\u escape in the file, or bytes that are not UTF-8)"
    )


def id_problem(text: str) -> str | None:
    """Why ``text`` cannot be an id (a predicate, e.g. ``"is empty"``), or None when it can."""
    if not text:
        return "is empty"
    if len(text) > MAX_ID_CHARS:
        return f"is {len(text):,} characters long; an id has at most {MAX_ID_CHARS}"
    bad = _control_character(text)
    if bad:
        return f"contains a control character ({bad})"
    bad = broken_text_problem(text)
    if bad:
        return bad
    if text != text.strip():
        return "starts or ends with a space"
    return None


def name_problem(text: str) -> str | None:
    """Why ``text`` cannot be a name (a predicate), or None when it can.

    For callers that take a name outside a snapshot (a run's new name, a scenario's name).
    """
    if len(text) > MAX_NAME_CHARS:
        return f"is {len(text):,} characters long; a name has at most {MAX_NAME_CHARS}"
    bad = _control_character(text, _NAME_ALLOWED_CONTROLS)
    if bad:
        return f"contains a control character ({bad})"
    return broken_text_problem(text)


def _limit(check):
    def validate(value: str) -> str:
        problem = check(value)
        if problem:
            raise PydanticCustomError("allocator_limit", problem)
        return value

    return AfterValidator(validate)


Id = Annotated[str, Field(strict=True), _limit(id_problem)]
Name = Annotated[str, Field(strict=True), _limit(name_problem)]
Rank = Annotated[float, Field(ge=1.0, le=MAX_MAGNITUDE, strict=True)]


class SnapshotError(ValueError):
    """Invalid input. ``messages`` lists every problem found, each naming its entry."""

    def __init__(self, messages: list[str]):
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class RunSettings(_Model):
    """Solve settings; defaults as in allocation-model.md."""

    preferencer_weight: float = Field(0.3, ge=0.0, le=1.0, strict=True)
    preference_power: float = Field(1.0, gt=0.0, strict=True)
    max_seconds: float = Field(60.0, gt=0.0, strict=True)
    rng_seed: int = Field(1234, ge=0, le=2**63 - 1, strict=True)
    allow_worker_preference_ties: StrictBool = True
    stability: StrictBool = False
    # business-rules.md "Fewest moves": first minimise moves away from previous_allocations.
    fewest_moves: StrictBool = False

    def reported(self) -> dict[str, Any]:
        """The settings as a result and the canonical snapshot record them: ``fewest_moves``
        only when on, so that a run without the business rules keeps its bytes."""
        d = self.model_dump(mode="json")
        if not d.get("fewest_moves"):
            d.pop("fewest_moves", None)
        return d

    @field_validator("preference_power")
    @classmethod
    def _power_not_huge(cls, v: float) -> float:
        # Ranks go up to tens of thousands; a power above 8 overflows any sensible cost scale.
        if v > 8:
            raise ValueError("must be at most 8")
        return v


class RunInfo(_Model):
    id: Id
    name: Name = ""


class Worker(_Model):
    id: Id
    name: Name = ""
    qualification_ids: list[Id] = Field(default_factory=list)
    # business-rules.md: 1 is placed first; workers without one form the last tier.
    priority: int | None = Field(None, ge=1, le=MAX_PRIORITY, strict=True)


class JobLine(_Model):
    id: Id
    name: Name = ""
    max_n_workers: int = Field(ge=0, le=MAX_PLACES, strict=True)
    must_have_workers: StrictBool = False
    preferencer_ids: list[Id] = Field(default_factory=list)
    # business-rules.md: a job line without a site is a site of its own.
    site: Name | None = None

    @field_validator("site")
    @classmethod
    def _site_not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise PydanticCustomError(
                "allocator_limit", "is blank; a site is a non-empty name (leave it out for a line that is a site of its own)"
            )
        return v


class WorkerPreference(_Model):
    worker_id: Id
    job_line_id: Id
    rank: Rank


class PreferencerPreference(_Model):
    preferencer_id: Id
    worker_id: Id
    rank: Rank


class Eligibility(_Model):
    job_line_id: Id
    included_worker_ids: list[Id] = Field(default_factory=list)
    excluded_worker_ids: list[Id] = Field(default_factory=list)
    included_qualification_ids: list[Id] = Field(default_factory=list)
    excluded_qualification_ids: list[Id] = Field(default_factory=list)


class Weighting(_Model):
    worker_id: Id
    job_line_id: Id | None = None
    value: float = Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE, strict=True)


class Pair(_Model):
    worker_id: Id
    job_line_id: Id


class LinkedWorkers(_Model):
    """Workers who must be allocated to job lines of one and the same site (a couple)."""

    id: Id
    worker_ids: list[Id]


class Quota(_Model):
    """A minimum and/or maximum number of workers on a group of job lines (business-rules.md)."""

    id: Id
    sites: list[Name] | None = None
    job_line_ids: list[Id] | None = None
    qualification_id: Id | None = None
    min_workers: int = Field(0, ge=0, le=MAX_PLACES * 1000, strict=True)
    max_workers: int | None = Field(None, ge=0, le=MAX_PLACES * 1000, strict=True)


class RunSnapshot(_Model):
    """One run's whole input. Build with :meth:`parse` to get planner-readable errors."""

    format: Literal["allocator-run/1"]
    run: RunInfo = Field(default_factory=lambda: RunInfo(id="run"))
    settings: RunSettings = Field(default_factory=RunSettings)
    workers: list[Worker]
    job_lines: list[JobLine]
    worker_preferences: list[WorkerPreference] = Field(default_factory=list)
    preferencer_preferences: list[PreferencerPreference] = Field(default_factory=list)
    eligibility: list[Eligibility] = Field(default_factory=list)
    weightings: list[Weighting] = Field(default_factory=list)
    pins: list[Pair] = Field(default_factory=list)
    forbids: list[Pair] = Field(default_factory=list)
    # business-rules.md: every key optional; a snapshot without them means what it meant before.
    linked_workers: list[LinkedWorkers] = Field(default_factory=list)
    quotas: list[Quota] = Field(default_factory=list)
    previous_allocations: list[Pair] = Field(default_factory=list)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def parse(cls, data: Any) -> RunSnapshot:
        """Validate ``data`` (a dict as read from JSON) or raise :class:`SnapshotError`."""
        snap, problems = _validate(data)
        if problems or snap is None:
            raise SnapshotError(problems)
        return snap

    @classmethod
    def from_json(cls, text: str | bytes) -> RunSnapshot:
        """Parse and validate JSON text (repeated keys and deep nesting refused, see inputfile)."""
        from allocator.inputfile import parse_json

        return cls.parse(parse_json(text))

    def with_settings(self, **overrides: Any) -> RunSnapshot:
        """A copy with some settings replaced (validated)."""
        merged = {**self.settings.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        try:
            settings = RunSettings.model_validate(merged)
        except ValidationError as exc:
            raise SnapshotError(_pydantic_messages(exc, {"settings": merged}, prefix=("settings",))) from None
        snap = self.model_copy(update={"settings": settings})
        problems = _check_references(snap)
        if problems:
            raise SnapshotError(problems)
        return snap

    # -- canonical form -----------------------------------------------------------------
    def canonical(self) -> dict:
        """The snapshot as a dict with every list in a fixed order (ids sorted).

        Order in the input never matters: two snapshots that differ only in the order of
        their lists have the same canonical form, the same fingerprint and the same result.
        """
        d = self.model_dump(mode="json")
        d["workers"] = sorted(
            ({**w, "qualification_ids": sorted(set(w["qualification_ids"]))} for w in d["workers"]),
            key=lambda w: w["id"],
        )
        d["job_lines"] = sorted(
            ({**j, "preferencer_ids": sorted(set(j["preferencer_ids"]))} for j in d["job_lines"]),
            key=lambda j: j["id"],
        )
        d["worker_preferences"] = sorted(d["worker_preferences"], key=lambda r: (r["worker_id"], r["job_line_id"]))
        d["preferencer_preferences"] = sorted(
            d["preferencer_preferences"], key=lambda r: (r["preferencer_id"], r["worker_id"])
        )
        d["eligibility"] = sorted(
            (
                {k: (sorted(set(v)) if isinstance(v, list) else v) for k, v in e.items()}
                for e in d["eligibility"]
            ),
            key=lambda e: e["job_line_id"],
        )
        d["weightings"] = sorted(
            d["weightings"], key=lambda r: (r["worker_id"], r["job_line_id"] or "", r["value"])
        )
        d["pins"] = sorted(d["pins"], key=lambda r: (r["worker_id"], r["job_line_id"]))
        d["forbids"] = sorted(d["forbids"], key=lambda r: (r["worker_id"], r["job_line_id"]))
        # The business rules' keys appear only when used, so that a run without them keeps
        # the canonical form, fingerprint and bytes it had before they existed.
        for w in d["workers"]:
            if w.get("priority") is None:
                w.pop("priority", None)
        for j in d["job_lines"]:
            if j.get("site") is None:
                j.pop("site", None)
        d["settings"] = self.settings.reported()
        d["linked_workers"] = sorted(
            ({"id": link["id"], "worker_ids": sorted(set(link["worker_ids"]))} for link in d["linked_workers"]),
            key=lambda link: link["id"],
        )
        d["quotas"] = sorted(
            (
                {k: (sorted(set(v)) if isinstance(v, list) else v) for k, v in q.items()}
                for q in d["quotas"]
            ),
            key=lambda q: q["id"],
        )
        d["previous_allocations"] = sorted(
            d["previous_allocations"], key=lambda r: (r["worker_id"], r["job_line_id"])
        )
        for key in ("linked_workers", "quotas", "previous_allocations"):
            if not d[key]:
                del d[key]
        return d

    def fingerprint(self) -> str:
        """sha256 of the canonical snapshot (settings included)."""
        return _sha256(self.canonical())

    def data_fingerprint(self) -> str:
        """sha256 of the run's data only: the canonical snapshot without settings, pins and forbids.

        This changes exactly when the run's own inputs change (a preference, a line, a rule),
        not when a planner tries other settings or overrides in a scenario.
        """
        d = self.canonical()
        for key in ("settings", "pins", "forbids"):
            d.pop(key, None)
        return _sha256(d)

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.canonical(), indent=indent, ensure_ascii=False)


def load_snapshot(path: str | Path, *, label: str | None = None) -> RunSnapshot:
    """Read and validate a snapshot file, raising :class:`SnapshotError` in planner's words.

    ``label`` is how messages name the file (default its path).
    """
    from allocator.inputfile import read_input_file

    return RunSnapshot.from_json(read_input_file(Path(path), label=label))


def input_problems(
    data: Any, *, also_worker_ids: Iterable[str] = (), also_line_ids: Iterable[str] = ()
) -> list[str]:
    """Every problem of ``data``, both stages: each entry's fields, then ids and references.

    For a reader that dropped entries it could not read (a workbook's rows with a bad cell):
    ``also_worker_ids`` and ``also_line_ids`` are the ids those entries gave, which count as
    existing so that references to them are not reported as dangling; pins are then not
    checked against eligibility (the rules read may be incomplete).
    """
    also_w, also_l = list(also_worker_ids), list(also_line_ids)
    return _validate(data, also_w, also_l, partial=bool(also_w or also_l))[1]


def not_an_object(data: Any) -> str:
    """The message for a snapshot that is not a JSON object (a list, a number, text, null)."""
    return (
        "The snapshot must be a JSON object with 'format', 'workers' and 'job_lines', "
        f"not {_shown_value(data)}."
    )


def _validate(
    data: Any, also_workers: list[str] | None = None, also_lines: list[str] | None = None, *, partial: bool = False
) -> tuple[RunSnapshot | None, list[str]]:
    if not isinstance(data, dict):
        return None, [not_an_object(data)]
    fmt = data.get("format")
    if fmt != FORMAT:
        return None, [
            f"format: expected {FORMAT!r}, found {fmt!r}. This file is not a run snapshot "
            "of a version this program reads."
        ]
    also_workers, also_lines = also_workers or [], also_lines or []
    try:
        snap = RunSnapshot.model_validate(data)
    except ValidationError as exc:
        problems = _pydantic_messages(exc, data)
        # The second stage (dangling and repeated ids) still runs on the entries that are
        # valid, so that one attempt shows the planner everything to fix.
        salvaged = _salvage(data)
        if salvaged is not None:
            partial_snap, workers, lines = salvaged
            problems += _check_references(partial_snap, workers + also_workers, lines + also_lines, check_pins=False)
        return None, problems
    if partial:
        workers = [w.id for w in snap.workers] + also_workers
        lines = [j.id for j in snap.job_lines] + also_lines
        return None, _check_references(snap, workers, lines, check_pins=False)
    return snap, _check_references(snap)


def _sha256(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# -- messages -----------------------------------------------------------------------------

_LIST_LABEL_KEYS = {
    "workers": ("id",),
    "job_lines": ("id",),
    "worker_preferences": ("worker_id", "job_line_id"),
    "preferencer_preferences": ("preferencer_id", "worker_id"),
    "eligibility": ("job_line_id",),
    "weightings": ("worker_id", "job_line_id"),
    "pins": ("worker_id", "job_line_id"),
    "forbids": ("worker_id", "job_line_id"),
    "linked_workers": ("id",),
    "quotas": ("id",),
    "previous_allocations": ("worker_id", "job_line_id"),
}

_KEY_WORDS = {
    "id": "id",
    "worker_id": "worker",
    "job_line_id": "job line",
    "preferencer_id": "supervisor",
}


def entry_label(section: str, index: int, data: Any) -> str:
    """How a message names ``data[section][index]``: ``workers[3] (id 'w4')``."""
    label = f"{section}[{index}]"
    try:
        entry = data[section][index]
    except (KeyError, IndexError, TypeError):
        return label
    if not isinstance(entry, dict):
        return label
    parts = []
    for key in _LIST_LABEL_KEYS.get(section, ()):
        val = entry.get(key)
        if isinstance(val, str) and val:
            parts.append(f"{_KEY_WORDS[key]} {_shown_id(val)}")
    return f"{label} ({', '.join(parts)})" if parts else label


def _pydantic_messages(exc: ValidationError, data: Any, prefix: tuple = ()) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(prefix) + tuple(err["loc"])[len(prefix):] if prefix else tuple(err["loc"])
        where = ""
        rest = list(loc)
        if len(rest) >= 2 and isinstance(rest[0], str) and isinstance(rest[1], int):
            where = entry_label(rest[0], rest[1], data)
            rest = rest[2:]
        elif rest:
            where = str(rest.pop(0))
        field = ".".join(str(x) if not isinstance(x, int) else f"[{x}]" for x in rest).replace(".[", "[")
        typ = err["type"]
        if typ == "allocator_limit":
            # The message is a predicate ("contains a control character (NUL)"): say whose.
            out.append(f"{where}: {_field_noun(field)} {err['msg']}" if where else f"{_field_noun(field)} {err['msg']}")
            continue
        bound = _limit_bound(err)
        rule_words = _RULE_FIELD_WORDS.get((field, typ))
        if rule_words is not None:
            text = f"{rule_words}, not {_shown_value(err.get('input'))}"
        elif bound is not None:
            text = f"must be {bound}, not {_shown_value(err.get('input'))}"
        elif typ in _TYPE_WORDS:
            text = f"must be {_TYPE_WORDS[typ]}, not {_shown_value(err.get('input'))}"
        elif typ == "extra_forbidden":
            text = f"unknown field {field!r}" if field else "unknown field"
            field = ""
        elif typ == "missing":
            text = "is required but missing"
        elif typ in ("finite_number",):
            text = "must be a finite number"
        else:
            text = err["msg"]
            text = text[0].lower() + text[1:] if text else text
            if typ.startswith("literal_error") or typ == "literal_error":
                text = f"{text}"
        subject = f"{where}: {field}" if field and where else (where or field)
        out.append(f"{subject}: {text}" if subject else text)
    return out


_TYPE_WORDS = {
    "float_type": "a number",
    "int_type": "a whole number",
    "string_type": "text",
    "bool_type": "true or false",
    "list_type": "a list",
    "model_type": "a JSON object",
    "dict_type": "a JSON object",
}

# Bounds of the business rules' numbers, said the way a planner reads them (pydantic's own
# "input should be greater than or equal to 1" says nothing about what the number means).
_RULE_FIELD_WORDS = {
    ("priority", "greater_than_equal"): "must be a whole number of at least 1 (1 is placed first)",
    ("min_workers", "greater_than_equal"): "must be a whole number of workers, 0 or more",
    ("max_workers", "greater_than_equal"): "must be a whole number of workers, 0 or more (or null for no maximum)",
}

_FIELD_NOUNS = {
    "id": "the id",
    "name": "the name",
    "worker_id": "the worker id",
    "job_line_id": "the job line id",
    "preferencer_id": "the supervisor id",
    "site": "the site",
}


def _limit_bound(err: Any) -> str | None:
    """'at most 1,000,000' when ``err`` is a breach of one of the Limits (not a model rule)."""
    ctx = err.get("ctx") or {}
    if err["type"] == "less_than_equal" and ctx.get("le") in (MAX_PLACES, MAX_MAGNITUDE):
        return f"at most {ctx['le']:,.0f}"
    if err["type"] == "greater_than_equal" and ctx.get("ge") == -MAX_MAGNITUDE:
        return f"at least {ctx['ge']:,.0f}"
    return None


def _field_noun(field: str) -> str:
    return _FIELD_NOUNS.get(field, field or "the value")


def _shown_id(text: str) -> str:
    """An id as a message quotes it; a huge one is cut (the entry's index names it anyway)."""
    if len(text) > 60:
        return f"{text[:40]!r}… ({len(text):,} characters)"
    return repr(text)


def _shown_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the text {_shown_id(value)}"
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a list"
    return repr(value)


# -- cross-reference checks -----------------------------------------------------------------


def _duplicates(values) -> list:
    return [v for v, n in Counter(values).items() if n > 1]


_SECTION_MODELS = {
    "workers": Worker,
    "job_lines": JobLine,
    "worker_preferences": WorkerPreference,
    "preferencer_preferences": PreferencerPreference,
    "eligibility": Eligibility,
    "weightings": Weighting,
    "pins": Pair,
    "forbids": Pair,
    "linked_workers": LinkedWorkers,
    "quotas": Quota,
    "previous_allocations": Pair,
}


def _salvage(data: dict) -> tuple[RunSnapshot, list[str], list[str]] | None:
    """The snapshot's valid entries, and every worker and job line id the file gives.

    None when the second stage cannot run: without lists of workers and job lines, or with
    an entry there that has no id, a reference may mean what could not be read. Ids of
    entries with field errors still count as given (their entry's own message says what is
    wrong), so nothing is reported twice.
    """
    if not isinstance(data.get("workers"), list) or not isinstance(data.get("job_lines"), list):
        return None
    for section in ("workers", "job_lines"):
        if not all(isinstance(e, dict) and isinstance(e.get("id"), str) for e in data[section]):
            return None  # an entry without an id: a reference may have meant it
    kept: dict[str, list] = {}
    for section, model in _SECTION_MODELS.items():
        entries = data.get(section)
        kept[section] = []
        for entry in entries if isinstance(entries, list) else ():
            try:
                kept[section].append(model.model_validate(entry))
            except ValidationError:
                pass
    try:
        settings = RunSettings.model_validate(data.get("settings", {}))
    except ValidationError:
        settings = RunSettings()  # its own messages are out; no tie check without valid settings
    snap = RunSnapshot.model_construct(format=FORMAT, run=RunInfo(id="run"), settings=settings, **kept)

    def given(section: str) -> list[str]:
        return [e["id"] for e in data[section] if isinstance(e, dict) and isinstance(e.get("id"), str)]

    return snap, given("workers"), given("job_lines")


def _check_references(
    s: RunSnapshot,
    all_worker_ids: list[str] | None = None,
    all_line_ids: list[str] | None = None,
    *,
    check_pins: bool = True,
) -> list[str]:
    errs: list[str] = []
    if all_worker_ids is None:
        all_worker_ids = [w.id for w in s.workers]
    if all_line_ids is None:
        all_line_ids = [j.id for j in s.job_lines]
    worker_ids = set(all_worker_ids)
    line_ids = set(all_line_ids)

    for d in _duplicates(all_worker_ids):
        errs.append(f"workers: the id {_shown_id(d)} is used by more than one worker")
    for d in _duplicates(all_line_ids):
        errs.append(f"job_lines: the id {_shown_id(d)} is used by more than one job line")
    if not s.workers and not all_worker_ids:
        errs.append("workers: the run has no workers")
    if not s.job_lines and not all_line_ids:
        errs.append("job_lines: the run has no job lines")

    def check_worker(section: str, i: int, wid: str) -> None:
        if wid not in worker_ids:
            errs.append(f"{section}[{i}]: worker {_shown_id(wid)} is not a worker of this run")

    def check_line(section: str, i: int, jid: str | None) -> None:
        if jid is not None and jid not in line_ids:
            errs.append(f"{section}[{i}]: job line {_shown_id(jid)} is not a job line of this run")

    # Worker preferences: references, duplicates, ties when not allowed.
    seen: dict[tuple[str, str], int] = {}
    by_worker: dict[str, list[tuple[float, str]]] = {}
    for i, r in enumerate(s.worker_preferences):
        check_worker("worker_preferences", i, r.worker_id)
        check_line("worker_preferences", i, r.job_line_id)
        key = (r.worker_id, r.job_line_id)
        if key in seen:
            errs.append(
                f"worker_preferences[{i}]: worker {r.worker_id!r} ranks job line {r.job_line_id!r} "
                f"more than once (also at worker_preferences[{seen[key]}])"
            )
        else:
            seen[key] = i
        by_worker.setdefault(r.worker_id, []).append((r.rank, r.job_line_id))
    if not s.settings.allow_worker_preference_ties:
        for wid, ranks in sorted(by_worker.items()):
            counts = Counter(rank for rank, _ in ranks)
            for rank, n in sorted(counts.items()):
                if n > 1:
                    lines = sorted(j for rk, j in ranks if rk == rank)
                    errs.append(
                        f"worker_preferences: worker {wid!r} gives rank {_num(rank)} to {n} job lines "
                        f"({', '.join(map(repr, lines))}), but ties are not allowed in this run "
                        "(the setting that allows tied worker ranks is off)"
                    )

    seen = {}
    for i, r in enumerate(s.preferencer_preferences):
        check_worker("preferencer_preferences", i, r.worker_id)
        key = (r.preferencer_id, r.worker_id)
        if key in seen:
            errs.append(
                f"preferencer_preferences[{i}]: supervisor {r.preferencer_id!r} ranks worker "
                f"{r.worker_id!r} more than once (also at preferencer_preferences[{seen[key]}])"
            )
        else:
            seen[key] = i

    seen_lines: dict[str, int] = {}
    for i, e in enumerate(s.eligibility):
        check_line("eligibility", i, e.job_line_id)
        if e.job_line_id in seen_lines:
            errs.append(
                f"eligibility[{i}]: job line {e.job_line_id!r} has more than one eligibility entry "
                f"(also eligibility[{seen_lines[e.job_line_id]}]); merge them into one"
            )
        else:
            seen_lines[e.job_line_id] = i
        for field in ("included_worker_ids", "excluded_worker_ids"):
            for wid in getattr(e, field):
                if wid not in worker_ids:
                    errs.append(f"eligibility[{i}] (job line {e.job_line_id!r}): {field} names {wid!r}, which is not a worker of this run")

    for i, w in enumerate(s.weightings):
        check_worker("weightings", i, w.worker_id)
        check_line("weightings", i, w.job_line_id)

    pinned: dict[str, int] = {}
    for i, p in enumerate(s.pins):
        check_worker("pins", i, p.worker_id)
        check_line("pins", i, p.job_line_id)
        if p.worker_id in pinned:
            errs.append(f"pins[{i}]: worker {p.worker_id!r} is pinned more than once (also pins[{pinned[p.worker_id]}])")
        else:
            pinned[p.worker_id] = i
    forbidden = set()
    for i, f in enumerate(s.forbids):
        check_worker("forbids", i, f.worker_id)
        check_line("forbids", i, f.job_line_id)
        forbidden.add((f.worker_id, f.job_line_id))

    errs += _check_business_rules(s, worker_ids, line_ids, check_worker, check_line)

    if errs or not check_pins:
        return errs

    # Pins inside one link must be on job lines of one site (business-rules.md).
    site_of = {j.id: (j.site if j.site is not None else None) for j in s.job_lines}
    pin_of = {p.worker_id: p.job_line_id for p in s.pins}
    for i, link in enumerate(s.linked_workers):
        pinned_sites = {}
        for wid in link.worker_ids:
            if wid in pin_of:
                jid = pin_of[wid]
                pinned_sites[wid] = ("site", site_of[jid]) if site_of[jid] is not None else ("line", jid)
        if len(set(pinned_sites.values())) > 1:
            shown = ", ".join(
                f"{wid!r} to {_site_words(kind, value)}" for wid, (kind, value) in sorted(pinned_sites.items())
            )
            errs.append(
                f"linked_workers[{i}] (id {link.id!r}): its workers must be on one site, but they are "
                f"pinned to different sites ({shown})"
            )

    # Pins must name an eligible, unforbidden pair.
    if s.pins:
        rules = RuleSet.from_entries(s.eligibility)
        tags = {w.id: set(w.qualification_ids) for w in s.workers}
        for i, p in enumerate(s.pins):
            if (p.worker_id, p.job_line_id) in forbidden:
                errs.append(f"pins[{i}]: worker {p.worker_id!r} is pinned to job line {p.job_line_id!r}, which is also forbidden for them")
                continue
            verdict = rules.verdict(p.worker_id, tags[p.worker_id], p.job_line_id)
            if not verdict.eligible:
                errs.append(
                    f"pins[{i}]: worker {p.worker_id!r} cannot be pinned to job line {p.job_line_id!r}: "
                    f"they are not eligible ({verdict.explain()})"
                )
    return errs


def _site_words(kind: str, value: str) -> str:
    return f"site {value!r}" if kind == "site" else f"job line {value!r} (a site of its own)"


def _check_business_rules(s: RunSnapshot, worker_ids: set[str], line_ids: set[str], check_worker, check_line) -> list[str]:
    """Links, quotas and previous allocations (business-rules.md): ids, sizes, references."""
    errs: list[str] = []
    # Links: unique ids, 2 to 4 distinct workers of this run, a worker in at most one link.
    seen_ids: dict[str, int] = {}
    in_link: dict[str, tuple[int, str]] = {}
    for i, link in enumerate(s.linked_workers):
        where = f"linked_workers[{i}] (id {_shown_id(link.id)})"
        if link.id in seen_ids:
            errs.append(f"{where}: the id is used by more than one link (also linked_workers[{seen_ids[link.id]}])")
        else:
            seen_ids[link.id] = i
        if not link.worker_ids:
            errs.append(f"{where}: the link names no workers; a link has 2 to 4 workers")
            continue
        repeated = _duplicates(link.worker_ids)
        if repeated:
            errs.append(f"{where}: names worker {_shown_id(repeated[0])} more than once")
        distinct = list(dict.fromkeys(link.worker_ids))
        if not 2 <= len(distinct) <= 4:
            errs.append(f"{where}: a link has 2 to 4 workers, this one has {len(distinct)}")
        for wid in distinct:
            if wid not in worker_ids:
                errs.append(f"{where}: worker {_shown_id(wid)} is not a worker of this run")
            elif wid in in_link:
                j, other = in_link[wid]
                errs.append(
                    f"{where}: worker {_shown_id(wid)} is already in link {other!r} (linked_workers[{j}]); "
                    "a worker is in at most one link"
                )
            else:
                in_link[wid] = (i, link.id)

    # Quotas: unique ids, exactly one of sites / job lines, known sites and lines, min <= max.
    sites = {j.site for j in s.job_lines if j.site is not None}
    seen_ids = {}
    for i, q in enumerate(s.quotas):
        where = f"quotas[{i}] (id {_shown_id(q.id)})"
        if q.id in seen_ids:
            errs.append(f"{where}: the id is used by more than one quota (also quotas[{seen_ids[q.id]}])")
        else:
            seen_ids[q.id] = i
        if (q.sites is None) == (q.job_line_ids is None):
            if q.sites is not None:
                errs.append(f"{where}: names both sites and job lines (job_line_ids); a quota counts either sites or job lines, name one")
            else:
                errs.append(f"{where}: names neither sites nor job lines (job_line_ids); say which sites or job lines it counts")
        elif q.sites is not None:
            if not q.sites:
                errs.append(f"{where}: 'sites' is empty; name at least one site")
            for site in q.sites:
                if site not in sites:
                    errs.append(f"{where}: site {_shown_id(site)} is not the site of any job line of this run")
        else:
            if not q.job_line_ids:
                errs.append(f"{where}: 'job_line_ids' is empty; name at least one job line")
            for jid in q.job_line_ids or ():
                if jid not in line_ids:
                    errs.append(f"{where}: job line {_shown_id(jid)} is not a job line of this run")
        if q.max_workers is not None and q.min_workers > q.max_workers:
            errs.append(
                f"{where}: the minimum ({q.min_workers}) is above the maximum ({q.max_workers}); "
                "no allocation can meet both"
            )

    # Previous allocations: workers and lines of this run, a worker at most once.
    seen_workers: dict[str, int] = {}
    for i, p in enumerate(s.previous_allocations):
        check_worker("previous_allocations", i, p.worker_id)
        check_line("previous_allocations", i, p.job_line_id)
        if p.worker_id in seen_workers:
            errs.append(
                f"previous_allocations[{i}]: worker {p.worker_id!r} appears more than once "
                f"(also previous_allocations[{seen_workers[p.worker_id]}])"
            )
        else:
            seen_workers[p.worker_id] = i
    return errs


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)

