"""Eligibility: the five steps of allocation-model.md, first match wins, with a reason for every verdict.

The scalar :class:`RuleSet` explains one pair (pins, the dashboard's "why"); the vectorised
:func:`eligibility_matrix` decides every pair of a run at once with numpy. Tests check that the
two agree on random runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

import numpy as np


class EligibilityEntry(Protocol):
    """One job line's eligibility rules, as the snapshot's ``eligibility`` list holds them.

    A protocol, so that this module needs nothing from :mod:`allocator.snapshot` (which
    imports this one to check its pins).
    """

    job_line_id: str
    included_worker_ids: Sequence[str]
    excluded_worker_ids: Sequence[str]
    included_qualification_ids: Sequence[str]
    excluded_qualification_ids: Sequence[str]


class HasEligibility(Protocol):
    """Anything with an ``eligibility`` list: a run snapshot."""

    @property
    def eligibility(self) -> Sequence[EligibilityEntry]: ...


class Reason(IntEnum):
    """Reason codes, in the order of the steps that decide them."""

    INCLUDED_WORKER = 1
    EXCLUDED_WORKER = 2
    EXCLUDED_TAG = 3
    INCLUDED_TAG = 4
    MISSING_INCLUDED_TAG = 5
    DEFAULT = 6

    @property
    def eligible(self) -> bool:
        return self in (Reason.INCLUDED_WORKER, Reason.INCLUDED_TAG, Reason.DEFAULT)

    @property
    def step(self) -> int:
        return min(int(self), 5)


ELIGIBLE_REASONS = np.array([False, True, False, False, True, False, True])  # indexed by Reason value

REASON_TEXT = {
    Reason.INCLUDED_WORKER: "named on the line's list of included workers",
    Reason.EXCLUDED_WORKER: "named on the line's list of excluded workers",
    Reason.EXCLUDED_TAG: "has the tag {tag}, which the line excludes",
    Reason.INCLUDED_TAG: "has the tag {tag}, which the line requires",
    Reason.MISSING_INCLUDED_TAG: "lacks every tag the line requires ({tags})",
    Reason.DEFAULT: "the line has no rule that applies, so everyone may take it",
}


@dataclass(frozen=True)
class Verdict:
    reason: Reason
    tag: str | None = None
    required_tags: tuple[str, ...] = ()

    @property
    def eligible(self) -> bool:
        return self.reason.eligible

    @property
    def code(self) -> str:
        return self.reason.name

    def explain(self) -> str:
        text = REASON_TEXT[self.reason].format(
            tag=repr(self.tag), tags=", ".join(repr(t) for t in self.required_tags)
        )
        return f"{self.reason.name}: {text}"


@dataclass(frozen=True)
class LineRules:
    included_workers: frozenset[str] = frozenset()
    excluded_workers: frozenset[str] = frozenset()
    included_tags: tuple[str, ...] = ()  # sorted, so the named tag is deterministic
    excluded_tags: tuple[str, ...] = ()

    def verdict(self, worker_id: str, tags: set[str] | frozenset[str]) -> Verdict:
        if worker_id in self.included_workers:
            return Verdict(Reason.INCLUDED_WORKER)
        if worker_id in self.excluded_workers:
            return Verdict(Reason.EXCLUDED_WORKER)
        for t in self.excluded_tags:
            if t in tags:
                return Verdict(Reason.EXCLUDED_TAG, tag=t)
        for t in self.included_tags:
            if t in tags:
                return Verdict(Reason.INCLUDED_TAG, tag=t)
        if self.included_tags:
            return Verdict(Reason.MISSING_INCLUDED_TAG, required_tags=self.included_tags)
        return Verdict(Reason.DEFAULT)


class RuleSet:
    """The eligibility rules of a run, by job line id."""

    def __init__(self, rules: dict[str, LineRules]):
        self._rules = rules

    @classmethod
    def from_entries(cls, entries: Iterable[EligibilityEntry]) -> RuleSet:
        """The rules of a run from its eligibility entries (one per job line)."""
        rules = {}
        for e in entries:
            rules[e.job_line_id] = LineRules(
                included_workers=frozenset(e.included_worker_ids),
                excluded_workers=frozenset(e.excluded_worker_ids),
                included_tags=tuple(sorted(set(e.included_qualification_ids))),
                excluded_tags=tuple(sorted(set(e.excluded_qualification_ids))),
            )
        return cls(rules)

    @classmethod
    def from_snapshot(cls, snap: HasEligibility) -> RuleSet:
        """The rules of a run snapshot (:meth:`from_entries` of its ``eligibility``)."""
        return cls.from_entries(snap.eligibility)

    def for_line(self, job_line_id: str) -> LineRules:
        return self._rules.get(job_line_id, LineRules())

    def verdict(self, worker_id: str, tags: set[str] | frozenset[str], job_line_id: str) -> Verdict:
        return self.for_line(job_line_id).verdict(worker_id, tags)


def eligibility_matrix(
    worker_ids: list[str],
    worker_tags: list[list[str]],
    line_ids: list[str],
    rules: RuleSet,
) -> np.ndarray:
    """Reason code (``int8``, values of :class:`Reason`) for every (worker, line) pair.

    Vectorised over workers: per line, the work is a few boolean vector operations, so a run of
    tens of thousands of workers takes well under a second.
    """
    m, n = len(worker_ids), len(line_ids)
    all_tags = sorted({t for ts in worker_tags for t in ts})
    tag_index = {t: k for k, t in enumerate(all_tags)}
    has_tag = np.zeros((m, max(len(all_tags), 1)), dtype=bool)
    for i, ts in enumerate(worker_tags):
        for t in ts:
            has_tag[i, tag_index[t]] = True
    w_index = {w: i for i, w in enumerate(worker_ids)}

    reason = np.full((m, n), Reason.DEFAULT, dtype=np.int8)
    for j, lid in enumerate(line_ids):
        r = rules.for_line(lid)
        col = np.full(m, Reason.DEFAULT, dtype=np.int8)
        if r.included_tags:
            idx = [tag_index[t] for t in r.included_tags if t in tag_index]
            meets = has_tag[:, idx].any(axis=1) if idx else np.zeros(m, dtype=bool)
            col[:] = np.where(meets, Reason.INCLUDED_TAG, Reason.MISSING_INCLUDED_TAG)
        if r.excluded_tags:
            idx = [tag_index[t] for t in r.excluded_tags if t in tag_index]
            if idx:
                col[has_tag[:, idx].any(axis=1)] = Reason.EXCLUDED_TAG
        if r.excluded_workers:
            col[[w_index[w] for w in r.excluded_workers if w in w_index]] = Reason.EXCLUDED_WORKER
        if r.included_workers:
            col[[w_index[w] for w in r.included_workers if w in w_index]] = Reason.INCLUDED_WORKER
        reason[:, j] = col
    return reason
