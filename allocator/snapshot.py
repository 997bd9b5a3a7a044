"""The run snapshot (``allocator-run/1``): one run's whole input, validated once.

Everything that enters the engine (a JSON file, a workbook, a database run) becomes a
:class:`RunSnapshot` first. Validation happens here and only here: each entity checks its own
fields (pydantic), then :func:`_check_references` checks the cross-references. Every problem is
reported, not just the first, and every message names the offending entry in the planner's
words, e.g. ``worker_preferences[3] (worker 'w9', job line 'j2'): rank must be at least 1``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

FORMAT = "allocator-run/1"

Id = Annotated[str, Field(min_length=1, strict=True)]


class SnapshotError(ValueError):
    """Invalid input. ``messages`` lists every problem found, each naming its entry."""

    def __init__(self, messages: list[str]):
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class Settings(_Model):
    """Solve settings; defaults as in allocation-model.md."""

    preferencer_weight: float = Field(0.3, ge=0.0, le=1.0)
    preference_power: float = Field(1.0, gt=0.0)
    max_seconds: float = Field(60.0, gt=0.0)
    rng_seed: int = Field(1234, ge=0, le=2**63 - 1, strict=True)
    allow_worker_preference_ties: StrictBool = True
    stability: StrictBool = False

    @field_validator("preference_power")
    @classmethod
    def _power_not_huge(cls, v: float) -> float:
        # Ranks go up to tens of thousands; a power above 8 overflows any sensible cost scale.
        if v > 8:
            raise ValueError("must be at most 8")
        return v


class RunInfo(_Model):
    id: Id
    name: str = ""


class Worker(_Model):
    id: Id
    name: str = ""
    qualification_ids: list[Id] = Field(default_factory=list)


class JobLine(_Model):
    id: Id
    name: str = ""
    max_n_workers: int = Field(ge=0, strict=True)
    must_have_workers: StrictBool = False
    preferencer_ids: list[Id] = Field(default_factory=list)


class WorkerPreference(_Model):
    worker_id: Id
    job_line_id: Id
    rank: float = Field(ge=1.0)


class PreferencerPreference(_Model):
    preferencer_id: Id
    worker_id: Id
    rank: float = Field(ge=1.0)


class Eligibility(_Model):
    job_line_id: Id
    included_worker_ids: list[Id] = Field(default_factory=list)
    excluded_worker_ids: list[Id] = Field(default_factory=list)
    included_qualification_ids: list[Id] = Field(default_factory=list)
    excluded_qualification_ids: list[Id] = Field(default_factory=list)


class Weighting(_Model):
    worker_id: Id
    job_line_id: Id | None = None
    value: float


class Pair(_Model):
    worker_id: Id
    job_line_id: Id


class RunSnapshot(_Model):
    """One run's whole input. Build with :meth:`parse` to get planner-readable errors."""

    format: Literal["allocator-run/1"]
    run: RunInfo = Field(default_factory=lambda: RunInfo(id="run"))
    settings: Settings = Field(default_factory=Settings)
    workers: list[Worker]
    job_lines: list[JobLine]
    worker_preferences: list[WorkerPreference] = Field(default_factory=list)
    preferencer_preferences: list[PreferencerPreference] = Field(default_factory=list)
    eligibility: list[Eligibility] = Field(default_factory=list)
    weightings: list[Weighting] = Field(default_factory=list)
    pins: list[Pair] = Field(default_factory=list)
    forbids: list[Pair] = Field(default_factory=list)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def parse(cls, data: Any) -> RunSnapshot:
        """Validate ``data`` (a dict as read from JSON) or raise :class:`SnapshotError`."""
        if not isinstance(data, dict):
            raise SnapshotError(["The snapshot must be a JSON object with 'format', 'workers' and 'job_lines'."])
        fmt = data.get("format")
        if fmt != FORMAT:
            raise SnapshotError(
                [f"format: expected {FORMAT!r}, found {fmt!r}. This file is not a run snapshot "
                 "of a version this program reads."]
            )
        try:
            snap = cls.model_validate(data)
        except ValidationError as exc:
            raise SnapshotError(_pydantic_messages(exc, data)) from None
        problems = _check_references(snap)
        if problems:
            raise SnapshotError(problems)
        return snap

    @classmethod
    def from_json(cls, text: str | bytes) -> RunSnapshot:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SnapshotError([f"The file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."]) from None
        return cls.parse(data)

    def with_settings(self, **overrides: Any) -> RunSnapshot:
        """A copy with some settings replaced (validated)."""
        merged = {**self.settings.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        try:
            settings = Settings.model_validate(merged)
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


def load_snapshot(path: str | Path) -> RunSnapshot:
    """Read and validate a snapshot file, raising :class:`SnapshotError` in planner's words."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except FileNotFoundError:
        raise SnapshotError([f"File not found: {p}"]) from None
    except OSError as exc:
        raise SnapshotError([f"Cannot read {p}: {exc.strerror or exc}"]) from None
    return RunSnapshot.from_json(text)


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
}

_KEY_WORDS = {
    "id": "id",
    "worker_id": "worker",
    "job_line_id": "job line",
    "preferencer_id": "supervisor",
}


def _entry_label(section: str, index: int, data: Any) -> str:
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
            parts.append(f"{_KEY_WORDS[key]} {val!r}")
    return f"{label} ({', '.join(parts)})" if parts else label


def _pydantic_messages(exc: ValidationError, data: Any, prefix: tuple = ()) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(prefix) + tuple(err["loc"])[len(prefix):] if prefix else tuple(err["loc"])
        where = ""
        rest = list(loc)
        if len(rest) >= 2 and isinstance(rest[0], str) and isinstance(rest[1], int):
            where = _entry_label(rest[0], rest[1], data)
            rest = rest[2:]
        elif rest:
            where = str(rest.pop(0))
        field = ".".join(str(x) if not isinstance(x, int) else f"[{x}]" for x in rest).replace(".[", "[")
        typ = err["type"]
        if typ == "extra_forbidden":
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


# -- cross-reference checks -----------------------------------------------------------------


def _duplicates(values) -> list:
    return [v for v, n in Counter(values).items() if n > 1]


def _check_references(s: RunSnapshot) -> list[str]:
    errs: list[str] = []
    worker_ids = {w.id for w in s.workers}
    line_ids = {j.id for j in s.job_lines}

    for d in _duplicates(w.id for w in s.workers):
        errs.append(f"workers: the id {d!r} is used by more than one worker")
    for d in _duplicates(j.id for j in s.job_lines):
        errs.append(f"job_lines: the id {d!r} is used by more than one job line")
    if not s.workers:
        errs.append("workers: the run has no workers")
    if not s.job_lines:
        errs.append("job_lines: the run has no job lines")

    def check_worker(section: str, i: int, wid: str) -> None:
        if wid not in worker_ids:
            errs.append(f"{section}[{i}]: worker {wid!r} is not a worker of this run")

    def check_line(section: str, i: int, jid: str | None) -> None:
        if jid is not None and jid not in line_ids:
            errs.append(f"{section}[{i}]: job line {jid!r} is not a job line of this run")

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

    if errs:
        return errs

    # Pins must name an eligible, unforbidden pair.
    if s.pins:
        from allocator.eligibility import RuleSet  # local: eligibility imports this module

        rules = RuleSet.from_snapshot(s)
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


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)

