"""Scenarios: a planner's what-if on top of a run, never written over the run's own data.

A scenario is a name, settings (α, power, stability, time limit, seed, ties, fewest moves) and
:class:`ScenarioOverrides` (per-line places and must-be-filled flag, added pins, forbids and
weightings; the business rules of business-rules.md: links and quotas that replace the run's,
per-worker priority tiers, and the previous allocation that fewest moves keeps to). :func:`apply` lays them on a copy of the run's snapshot and validates the whole,
so what the engine solves is always a valid :class:`~allocator.snapshot.RunSnapshot`.

Messages name the row of the override table the planner edited, counted from 1 as the
dashboard shows them, e.g. ``Pins, row 2: worker 'w3' cannot be pinned to job line 'j4' ...``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from allocator.snapshot import RunSettings, RunSnapshot, SnapshotError

#: The settings a scenario may change, in the order the dashboard shows them.
SETTING_KEYS = (
    "preferencer_weight",
    "preference_power",
    "stability",
    "max_seconds",
    "rng_seed",
    "allow_worker_preference_ties",
    "fewest_moves",
)

#: Planners' words for each setting.
SETTING_LABELS = {
    "preferencer_weight": "Supervisor voice",
    "preference_power": "How much low choices hurt",
    "stability": "Stable",
    "max_seconds": "Time limit (seconds)",
    "rng_seed": "Tie-break seed",
    "allow_worker_preference_ties": "Allow tied worker ranks",
    "fewest_moves": "Fewest moves from the previous allocation",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class LineOverride(_Model):
    """A line's places and must-be-filled flag in this scenario (``None`` = as in the run)."""

    job_line_id: str
    max_n_workers: int | None = Field(None, ge=0)
    must_have_workers: bool | None = None


class PairOverride(_Model):
    worker_id: str
    job_line_id: str


class PinOverride(PairOverride):
    """A pin the scenario adds; ``reason``: why the planner set it (a pin set from the Results
    page's override preview always has one). Kept with the scenario, shown where it is
    compared and published; the engine never reads it."""

    reason: str | None = Field(None, max_length=500)


class WeightingOverride(_Model):
    """An added organisation priority: positive discourages the pair, negative favours it."""

    worker_id: str
    job_line_id: str | None = None
    value: float


class LinkOverride(_Model):
    """Workers who must be placed on one site (a couple), as the scenario has them."""

    id: str
    worker_ids: list[str]


class QuotaOverride(_Model):
    """A minimum and/or maximum number of workers on some sites or some job lines."""

    id: str
    sites: list[str] | None = None
    job_line_ids: list[str] | None = None
    qualification_id: str | None = None
    min_workers: int = Field(0, ge=0)
    max_workers: int | None = Field(None, ge=0)


class PriorityOverride(_Model):
    """A worker's priority tier in this scenario (1 is placed first; ``None``: no priority)."""

    worker_id: str
    priority: int | None = Field(None, ge=1, le=1_000_000)


class ScenarioOverrides(_Model):
    """Everything a scenario changes in the run's data. Empty = the run as it is.

    Pins added here replace a pin the run already has for the same worker; forbids and
    weightings are added to the run's own.
    """

    lines: list[LineOverride] = Field(default_factory=list)
    pins: list[PinOverride] = Field(default_factory=list)
    forbids: list[PairOverride] = Field(default_factory=list)
    weightings: list[WeightingOverride] = Field(default_factory=list)
    #: The run's own pins and forbids that this scenario lifts (each must be one the run has).
    lifted_pins: list[PairOverride] = Field(default_factory=list)
    lifted_forbids: list[PairOverride] = Field(default_factory=list)
    #: business-rules.md. ``None``: the run's own; a list (even empty) replaces the run's wholly.
    linked_workers: list[LinkOverride] | None = None
    quotas: list[QuotaOverride] | None = None
    #: Per worker: sets (or, with ``None``, clears) the run's priority.
    priorities: list[PriorityOverride] = Field(default_factory=list)
    #: ``None``: the run's own previous allocation; a list replaces it.
    previous_allocations: list[PairOverride] | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> ScenarioOverrides:
        """Validate a dict (as saved with a scenario), raising SnapshotError in planners' words."""
        if data is not None and not isinstance(data, Mapping):
            raise SnapshotError([f"The scenario's changes are {_kind(data)}, not a table of changes"])
        if not data:
            return cls()
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise SnapshotError([_override_message(err) for err in exc.errors(include_url=False)]) from None

    def is_empty(self) -> bool:
        return not (self.lines or self.pins or self.forbids or self.weightings
                    or self.lifted_pins or self.lifted_forbids or self.priorities
                    or self.linked_workers is not None or self.quotas is not None
                    or self.previous_allocations is not None)

    def to_dict(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        # A scenario without the business rules is saved as before: no new keys.
        for key in ("linked_workers", "quotas", "previous_allocations"):
            if out[key] is None:
                del out[key]
        if not out["priorities"]:
            del out["priorities"]
        for q in out.get("quotas") or []:  # as the snapshot writes a quota: only the keys given
            for k in ("sites", "job_line_ids", "qualification_id", "max_workers"):
                if q[k] is None:
                    del q[k]
        for pin in out["pins"]:  # a pin without a reason is saved as before: two keys
            if pin.get("reason") is None:
                pin.pop("reason", None)
        return out


_SECTION_WORDS = {
    "lines": "Places and must be filled",
    "pins": "Pins",
    "forbids": "Forbids",
    "weightings": "Organisation priority",
    "lifted_pins": "Run pins lifted",
    "lifted_forbids": "Run forbids lifted",
    "linked_workers": "Linked workers",
    "quotas": "Quotas",
    "priorities": "Priority tiers",
    "previous_allocations": "Previous allocation",
}
_FIELD_WORDS = {
    "job_line_id": "job line",
    "worker_id": "worker",
    "max_n_workers": "places",
    "must_have_workers": "must be filled",
    "value": "value",
    "reason": "reason",
    "id": "id",
    "worker_ids": "workers",
    "sites": "sites",
    "job_line_ids": "job lines",
    "qualification_id": "qualification",
    "min_workers": "at least",
    "max_workers": "at most",
    "priority": "priority",
}


def _override_message(err: dict) -> str:
    loc = list(err["loc"])
    where = ""
    if len(loc) >= 2 and isinstance(loc[1], int):
        where = f"{_SECTION_WORDS.get(str(loc[0]), loc[0])}, row {loc[1] + 1}"
        loc = loc[2:]
    elif loc:
        where = _SECTION_WORDS.get(str(loc[0]), str(loc[0]))
        loc = loc[1:]
    field = _FIELD_WORDS.get(str(loc[0]), str(loc[0])) if loc else ""
    text = _plain(err)
    return f"{where}: {field} {text}" if field else f"{where}: {text}"


def _plain(err: dict) -> str:
    """A pydantic error in planners' words."""
    typ, ctx = err["type"], err.get("ctx") or {}
    if typ == "missing":
        return "is missing: fill it in or delete the row"
    if typ == "extra_forbidden":
        return "is not a column this table has"
    if typ in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        word = {"greater_than_equal": "at least", "greater_than": "more than",
                "less_than_equal": "at most", "less_than": "less than"}[typ]
        limit = next(iter(ctx.values()), "")
        return f"must be {word} {limit}"
    if typ.startswith("int_"):
        return "must be a whole number"
    if typ.startswith("float_") or typ == "finite_number":
        return "must be a number"
    if typ.startswith("bool"):
        return "must be yes or no"
    if typ == "string_too_long":
        return f"is too long: at most {ctx.get('max_length')} characters"
    if typ.startswith("string") or typ == "none_required":
        return "must be filled in"
    text = str(err["msg"]).removeprefix("Value error, ")
    return text[0].lower() + text[1:] if text else text


def _kind(value: Any) -> str:
    """What a JSON value is, as a message says it."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    return "a list" if isinstance(value, list | tuple) else type(value).__name__


def settings_of(snapshot: RunSnapshot, settings: Mapping[str, Any] | RunSettings | None) -> RunSettings:
    """The run's settings with the scenario's on top (validated, planners' words on error)."""
    if isinstance(settings, RunSettings):
        return settings
    if settings is not None and not isinstance(settings, Mapping):
        # A scenario saved by a caller of the database's own functions may hold anything.
        raise SnapshotError([f"Settings: the scenario's settings are {_kind(settings)}, not a table of settings"])
    merged = {**snapshot.settings.model_dump(), **{k: v for k, v in (settings or {}).items() if v is not None}}
    unknown = sorted(set(merged) - set(RunSettings.model_fields))
    if unknown:
        raise SnapshotError([f"Settings: {k!r} is not a setting" for k in unknown])
    try:
        return RunSettings.model_validate(merged)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors(include_url=False):
            key = str(err["loc"][0]) if err["loc"] else ""
            label = SETTING_LABELS.get(key, key)
            msgs.append(f"Settings: {label} {_plain(err)}")
        raise SnapshotError(msgs) from None


def apply(
    snapshot: RunSnapshot,
    settings: Mapping[str, Any] | RunSettings | None = None,
    overrides: ScenarioOverrides | Mapping[str, Any] | None = None,
) -> RunSnapshot:
    """The run's snapshot with the scenario's settings and overrides on top, validated.

    ``snapshot`` is not changed. Raises :class:`SnapshotError` with one message per problem,
    each naming the override row (from 1) and what to do.
    """
    ov = overrides if isinstance(overrides, ScenarioOverrides) else ScenarioOverrides.parse(overrides)
    new_settings = settings_of(snapshot, settings)

    workers = {w.id: w for w in snapshot.workers}
    lines = {j.id: j for j in snapshot.job_lines}
    errs: list[str] = []

    def check_worker(section: str, i: int, wid: str) -> bool:
        if wid not in workers:
            errs.append(f"{_SECTION_WORDS[section]}, row {i + 1}: {wid!r} is not a worker of this run")
            return False
        return True

    def check_line(section: str, i: int, jid: str | None) -> bool:
        if jid is not None and jid not in lines:
            errs.append(f"{_SECTION_WORDS[section]}, row {i + 1}: {jid!r} is not a job line of this run")
            return False
        return True

    line_updates: dict[str, dict[str, Any]] = {}
    for i, lo in enumerate(ov.lines):
        if not check_line("lines", i, lo.job_line_id):
            continue
        if lo.job_line_id in line_updates:
            errs.append(
                f"{_SECTION_WORDS['lines']}, row {i + 1}: job line {lo.job_line_id!r} appears more "
                "than once; keep one row per line"
            )
            continue
        upd: dict[str, Any] = {}
        if lo.max_n_workers is not None:
            upd["max_n_workers"] = lo.max_n_workers
        if lo.must_have_workers is not None:
            upd["must_have_workers"] = lo.must_have_workers
        line_updates[lo.job_line_id] = upd

    pinned: dict[str, int] = {}
    for i, p in enumerate(ov.pins):
        ok = check_worker("pins", i, p.worker_id) & check_line("pins", i, p.job_line_id)
        if ok and p.worker_id in pinned:
            errs.append(
                f"Pins, row {i + 1}: worker {p.worker_id!r} is already pinned in row "
                f"{pinned[p.worker_id] + 1}; a worker can be pinned to one line only"
            )
        elif ok:
            pinned[p.worker_id] = i
    for i, f in enumerate(ov.forbids):
        check_worker("forbids", i, f.worker_id)
        check_line("forbids", i, f.job_line_id)
    for i, w in enumerate(ov.weightings):
        check_worker("weightings", i, w.worker_id)
        check_line("weightings", i, w.job_line_id)
        if not math.isfinite(w.value):
            errs.append(f"Organisation priority, row {i + 1}: the value must be a number")
    run_pin_pairs = {(p.worker_id, p.job_line_id) for p in snapshot.pins}
    run_forbid_pairs = {(f.worker_id, f.job_line_id) for f in snapshot.forbids}
    for section, lifted, have, what in (
        ("lifted_pins", ov.lifted_pins, run_pin_pairs, "pin"),
        ("lifted_forbids", ov.lifted_forbids, run_forbid_pairs, "forbid"),
    ):
        for i, pr in enumerate(lifted):
            if (pr.worker_id, pr.job_line_id) not in have:
                errs.append(
                    f"{_SECTION_WORDS[section]}, row {i + 1}: the run has no {what} of worker "
                    f"{pr.worker_id!r} on job line {pr.job_line_id!r} to lift"
                )
    prioritised: dict[str, int] = {}
    for i, pr in enumerate(ov.priorities):
        if not check_worker("priorities", i, pr.worker_id):
            continue
        if pr.worker_id in prioritised:
            errs.append(
                f"Priority tiers, row {i + 1}: worker {pr.worker_id!r} appears more than once (also row "
                f"{prioritised[pr.worker_id] + 1}); keep one row per worker"
            )
        else:
            prioritised[pr.worker_id] = i
    if errs:
        raise SnapshotError(errs)

    lifted_pins = {(p.worker_id, p.job_line_id) for p in ov.lifted_pins}
    lifted_forbids = {(f.worker_id, f.job_line_id) for f in ov.lifted_forbids}
    new_lines = [j.model_copy(update=line_updates[j.id]) if j.id in line_updates else j for j in snapshot.job_lines]
    run_pins = [
        p for p in snapshot.pins
        if p.worker_id not in pinned and (p.worker_id, p.job_line_id) not in lifted_pins
    ]
    run_forbids = [f for f in snapshot.forbids if (f.worker_id, f.job_line_id) not in lifted_forbids]
    data = snapshot.model_dump(mode="json")
    data["settings"] = new_settings.model_dump(mode="json")
    data["job_lines"] = [j.model_dump(mode="json") for j in new_lines]
    data["pins"] = [p.model_dump(mode="json") for p in run_pins] + [
        p.model_dump(mode="json", exclude={"reason"}) for p in ov.pins  # the why is the scenario's, not the run's
    ]
    data["forbids"] = [f.model_dump(mode="json") for f in run_forbids] + [
        f.model_dump(mode="json") for f in ov.forbids
    ]
    data["weightings"] = [w.model_dump(mode="json") for w in snapshot.weightings] + [
        w.model_dump(mode="json") for w in ov.weightings
    ]
    if ov.priorities:
        tier = {pr.worker_id: pr.priority for pr in ov.priorities}
        for w in data["workers"]:
            if w["id"] in tier:
                w["priority"] = tier[w["id"]]
    replaced = set()
    if ov.linked_workers is not None:
        data["linked_workers"] = [link.model_dump(mode="json") for link in ov.linked_workers]
        replaced.add("linked_workers")
    if ov.quotas is not None:
        data["quotas"] = [
            {k: v for k, v in q.model_dump(mode="json").items() if v is not None or k == "max_workers"}
            for q in ov.quotas
        ]
        replaced.add("quotas")
    if ov.previous_allocations is not None:
        data["previous_allocations"] = [p.model_dump(mode="json") for p in ov.previous_allocations]
        replaced.add("previous_allocations")
    try:
        return RunSnapshot.parse(data)
    except SnapshotError as exc:
        raise SnapshotError(
            [_rename_rules(_rename(m, len(run_pins), len(run_forbids), len(snapshot.weightings)), replaced)
             for m in exc.messages]
        ) from None


def _rename_rules(message: str, replaced: set[str]) -> str:
    """``linked_workers[1] (id 'c2'): ...`` as ``Linked workers, row 2 (id 'c2'): ...`` when the
    scenario's table replaced the run's, else as the run's own entry (the planner did not type it)."""
    import re

    m = re.match(r"^(linked_workers|quotas|previous_allocations)\[(\d+)\]((?: \([^)]*\))?): (.*)$", message, flags=re.S)
    if not m:
        return message
    section, idx, ident, rest = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    words = _SECTION_WORDS[section]
    # The tables call it a name, and the snapshot's key names are not the planner's words.
    ident = re.sub(r"^ \(id ", " (", ident)
    rest = (rest.replace("the id is used by", "the name is used by")
            .replace(" (job_line_ids)", "")
            .replace("'job_line_ids' is empty", "no job line is chosen")
            .replace("'sites' is empty", "no site is chosen"))
    # "(also quotas[0])", "link 'a' (linked_workers[0])": the other entry named as the planner sees it
    rest = re.sub(rf"{section}\[(\d+)\]",
                  lambda r: f"row {int(r.group(1)) + 1}" if section in replaced else f"the run's entry {int(r.group(1)) + 1}",
                  rest)
    if section in replaced:
        return f"{words}, row {idx + 1}{ident}: {rest}"
    return f"The run's own {words.lower()}, entry {idx + 1}{ident}: {rest}"


def _rename(message: str, n_run_pins: int, n_run_forbids: int, n_run_weightings: int) -> str:
    """Turn the snapshot's ``pins[7]: ...`` into ``Pins, row 2: ...`` for the scenario's rows."""
    import re

    def sub(section: str, offset: int, words: str, text: str) -> str:
        m = re.match(rf"^{section}\[(\d+)\](?: \([^)]*\))?: (.*)$", text, flags=re.S)
        if not m:
            return text
        idx = int(m.group(1))
        if idx < offset:
            return f"The run's own {words.lower()}, entry {idx + 1}: {m.group(2)}"
        return f"{words}, row {idx - offset + 1}: {m.group(2)}"

    message = sub("pins", n_run_pins, "Pins", message)
    message = sub("forbids", n_run_forbids, "Forbids", message)
    message = sub("weightings", n_run_weightings, "Organisation priority", message)
    return message


def changed_settings(snapshot: RunSnapshot, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Only the settings that differ from the run's own."""
    base = snapshot.settings.model_dump()
    return {k: v for k, v in settings.items() if k in base and base[k] != v}
