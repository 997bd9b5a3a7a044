"""What the Publish page decides, as plain functions (tested directly, no Streamlit).

- :func:`publish_blockers`: every reason the database would refuse to publish a scenario now,
  each with the kind of action that fixes it, so the page shows why instead of opening a
  confirmation that is bound to fail.
- :func:`stale_note`: the banner for a scenario solved on older data than the run's.
- :func:`history_rows`: the publication history as the page's table shows it (who, what,
  which scenario and which version of it).
- :func:`pins_with_reasons` and :func:`recorded_reason`: the scenario's pins with why each
  was set, shown before publishing and written into the publication's reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from allocator.kpis import setting_text, value_text
from allocator.service import PublicationEntry, Scenario

BlockerKind = Literal[
    "no_result", "impossible", "no_allocations", "stale", "same_as_published", "needs_replace", "needs_reason"
]

#: How each refusal is fixed: on the Scenario page, by solving again with the current data,
#: on this page (tick Replace, give a reason), or not at all (nothing new to publish).
FIX_BY: dict[str, str] = {
    "no_result": "scenario",
    "impossible": "scenario",
    "no_allocations": "scenario",
    "stale": "resolve",
    "same_as_published": "nothing",
    "needs_replace": "form",
    "needs_reason": "form",
}

_ENDED = {
    "infeasible": "is impossible as set up",
    "no_solution": "found no allocation within its time limit",
}

ACTION_WORDS = {"publish": "published", "supersede": "replaced", "complete": "solved by a worker"}


@dataclass(frozen=True)
class Blocker:
    """One reason publishing would be refused now, in a planner's words."""

    kind: BlockerKind
    message: str

    @property
    def fix(self) -> str:
        return FIX_BY[self.kind]


def scenario_title(sc: Scenario) -> str:
    """A scenario as the page names it: its name, and its version once there are several."""
    return f"{sc.name} (version {sc.version})" if sc.version > 1 else sc.name


def allocation_pairs(allocations: Iterable[Any]) -> frozenset[tuple[str, str]]:
    """Who goes where, from result JSON entries or :class:`~allocator.store.base.Allocation`."""
    out = set()
    for a in allocations:
        if isinstance(a, Mapping):
            out.add((str(a["worker_id"]), str(a["job_line_id"])))
        else:
            out.add((str(a.worker_id), str(a.job_line_id)))
    return frozenset(out)


def publish_blockers(
    sc: Scenario,
    *,
    current_fingerprint: str,
    run_published: bool,
    published_allocations: Iterable[Any] | None,
    supersede: bool,
    reason: str,
) -> list[Blocker]:
    """Why publishing ``sc`` now would be refused (empty: it would go through).

    Parameters
    ----------
    current_fingerprint
        The input fingerprint of the run's current data.
    run_published
        Whether the run already has a published allocation.
    published_allocations
        That allocation (who went where), when there is one.
    supersede, reason
        The page's "Replace the published allocation" tick and reason.
    """
    out: list[Blocker] = []
    title = scenario_title(sc)
    result = sc.result or {}
    status = result.get("status")
    allocations = result.get("allocations") or []
    stale = sc.input_fingerprint != current_fingerprint
    if not sc.result:
        return [Blocker("no_result", f"'{title}' was saved without a result: there is no allocation to publish. "
                                     "Open it on the Scenario page, press Solve and save it.")]
    if status in _ENDED:
        return [Blocker("impossible", f"'{title}' {_ENDED[status]}, so it has no allocation to publish. "
                                      "Open it on the Scenario page to see why and change it.")]
    if not allocations:
        return [Blocker("no_allocations", f"'{title}' has no allocations to publish. "
                                          "Open it on the Scenario page and solve it again.")]
    if stale:
        out.append(Blocker("stale", f"The run's data has changed since '{title}' was solved, so publishing it "
                                    "would be refused. Solve it again with the current data, then publish."))
    elif run_published and published_allocations is not None and (
        allocation_pairs(allocations) == allocation_pairs(published_allocations)
    ):
        return [Blocker("same_as_published", f"'{title}' gives exactly the allocation already published: "
                                             "there is nothing new to publish.")]
    if run_published and not supersede:
        out.append(Blocker("needs_replace", "This run's allocation is already published. To replace it, tick "
                                            "'Replace the published allocation' and give a reason."))
    elif run_published and not reason.strip():
        out.append(Blocker("needs_reason", "Give a reason to replace the published allocation: it is kept in "
                                           "the history."))
    return out


def resolve_ready(blockers: Sequence[Blocker]) -> bool:
    """Whether "solve again with the current data and publish" may start: only staleness stands in the way."""
    return bool(blockers) and all(b.kind == "stale" for b in blockers)


def stale_note(title: str, solved_at: datetime | None = None) -> str:
    """The banner for a scenario solved on older data than the run now has."""
    when = f" (saved {solved_at.astimezone():%d %b %H:%M})" if solved_at else ""
    return (f"The run's data has changed since '{title}' was solved{when}: its allocation and numbers are of "
            "the old data, so it cannot be published as it is. Solve it again with the current data below.")


#: The settings a publication is listed with, in the order the Scenario page shows them.
_SETTING_ORDER = ("preferencer_weight", "preference_power", "stability", "fewest_moves", "max_seconds",
                  "rng_seed", "allow_worker_preference_ties")
_YES_NO = {"stability", "fewest_moves", "allow_worker_preference_ties"}

#: A result's status, short enough for the history's column (130 px: "good, not proven best" was cut).
RESULT_SHORT = {
    "optimal": "proven best",
    "feasible": "not proven best",
    "infeasible": "impossible",
    "no_solution": "no allocation",
}
_RESULT_LONG = {"infeasible": "Impossible as set up.", "no_solution": "No allocation found within the time limit."}


def settings_words(settings: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """A scenario's settings as ``(label, value)`` in the Scenario page's words ("Stable", "yes").

    The history listed them as "voice 30% · hurt 1 · stable": short forms a planner had to
    decode, and a scenario solved without stability said nothing about it.
    """
    from allocator.scenario import SETTING_LABELS

    out = []
    for key in _SETTING_ORDER:
        if key not in (settings or {}) or settings[key] is None:
            continue
        v = settings[key]
        text = ("yes" if v else "no") if key in _YES_NO else setting_text(key, v)
        out.append((SETTING_LABELS.get(key, key), text))
    return out


def unproven_words(result: Mapping[str, Any]) -> str:
    """What a result not proven the best says of how far it can be from the best, in words.

    With priority tiers or fewest moves the levels say which are proven, and the gap of the
    whole allocation ("at most 2.6 % above the best possible") follows when the solve reported
    a bound: the levels alone left a known number out.
    """
    from allocator import kpis

    levels = kpis.levels_text((result.get("metrics") or {}).get("levels"))
    gap = kpis.gap_text(result.get("objective"), result.get("best_bound"))
    if not levels:
        return gap
    if kpis.gap_share(result.get("objective"), result.get("best_bound")) is None:
        return levels
    return f"{levels}; the whole allocation is {gap}"


def result_words(result: Mapping[str, Any] | None) -> str:
    """A result's standing in a sentence: proven the best, or how far from it it may be."""
    status = (result or {}).get("status")
    if status == "feasible":
        return f"Not proven the best possible: {unproven_words(result or {})}."
    if status == "optimal":
        return "The best possible, proven."
    return _RESULT_LONG.get(status, "Not solved.")


def history_rows(
    log: Sequence[PublicationEntry],
    scenario_of: Callable[[str], Scenario | None],
    who: Callable[[str | None], str],
) -> list[dict[str, Any]]:
    """The publication history, newest first: when, who, what, which scenario and which version of it, why.

    The total cost is written as every page and export writes it (:func:`allocator.kpis.value_text`).
    Each publication's settings, in full, are given by :func:`publication_details` (too many words
    for a column).
    """
    rows = []
    for e in reversed(log):
        sc = scenario_of(e.scenario_id) if e.scenario_id else None
        res = (sc.result if sc else None) or {}
        rows.append({
            "When": e.published_at,
            "Who": who(e.published_by),
            "What": ACTION_WORDS.get(e.action, e.action),
            "Scenario": sc.name if sc else "",
            "Version": sc.version if sc else None,
            "Reason": e.reason or "",
            "Result": RESULT_SHORT.get(res.get("status"), "") if res else "",
            "Total cost": value_text("objective", res.get("objective")) if res else "",
            "Workers": len(e.allocations),
        })
    return rows


def publication_details(sc: Scenario | None) -> list[tuple[str, str]]:
    """One publication's scenario in full: its settings in the Scenario page's words, then its result."""
    if sc is None:
        return []
    res = sc.result or {}
    settings = sc.settings or res.get("settings") or {}
    return [*settings_words(settings), ("Result", result_words(res))]


def pins_with_reasons(overrides: Mapping[str, Any] | None, worker_names: Mapping[str, str] | None = None,
                      line_names: Mapping[str, str] | None = None) -> list[str]:
    """The scenario's pins as lines of text, each with its reason ("no reason given" when none)."""
    wn, ln = worker_names or {}, line_names or {}
    out = []
    for p in (overrides or {}).get("pins") or []:
        w, j = str(p.get("worker_id")), str(p.get("job_line_id"))
        why = str(p.get("reason") or "").strip() or "no reason given"
        out.append(f"{wn.get(w, w)} ({w}) pinned to {ln.get(j, j)} ({j}): {why}")
    return out


def recorded_reason(reason: str | None, pins: Sequence[str]) -> str | None:
    """The reason written with a publication: the planner's own, then the scenario's pins with theirs.

    The publication log keeps one reason text per entry; the pins set by hand belong to the
    decision, so they go with it (the scenario itself keeps them too, under the entry's scenario id).
    """
    own = (reason or "").strip()
    if not pins:
        return own or None
    listed = "Pins in this scenario: " + "; ".join(pins)
    return f"{own}\n{listed}" if own else listed
