"""Data health of a run: what a planner should fix before solving, found without solving.

:func:`check` looks at a snapshot and reports

- what makes a solve impossible, taken from the diagnosis's cheap checks
  (:func:`allocator.diagnosis.precheck`), in its words and by its rules: a worker with no line
  they can take, a line that must be filled but has no places or nobody who can take it, fewer
  places than workers, pins that overfill a line;
- how deep each worker's rank list goes (how many lines they ranked, of how many they may take);
- workers who ranked lines they may not take (ineligible or forbidden), how many such lines,
  and whose first choice is one of them;
- short rank lists: workers who ranked fewer than :data:`SHORT_RANK_LIST` lines;
- lines whose pool of workers who may take them is smaller than their places;
- lines with few candidates: no more than :data:`FEW_CANDIDATES` workers may take them
  (though enough for their places);
- supervisors named on a line who ranked nobody (their lines get the neutral rank for everyone);
- the business rules (business-rules.md), by the diagnosis's checks: a link that no site can
  hold, a site that cannot hold the links that fit nowhere else, a quota (or quotas together)
  that the places and workers cannot meet, exactly by min-cost flows
  (:func:`allocator.diagnosis.quota_ranges`) when nothing else is wrong; and, as a warning, a
  link that only one site can hold, a quota that counts a tag no worker has, and a quota with
  neither a minimum nor a maximum.

Every finding is a :class:`~allocator.findings.Finding`: a code, a severity, a message in
planners' words that says what is wrong and what to do (naming workers and lines by name with
their id), and the ids of the workers and lines concerned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from allocator import diagnosis
from allocator.findings import PROBLEM, WARNING, Finding
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot

#: A rank list shorter than this many lines is reported (when the run has that many lines).
SHORT_RANK_LIST = 3
#: A line that no more than this many workers may take is reported (with places to fill).
FEW_CANDIDATES = 3
#: Time for the quotas' min-cost ranges in the report (the solve's diagnosis gives them longer).
QUOTA_RANGE_SECONDS = 2.0

# Codes of the findings health makes itself (the problems carry the diagnosis's codes).
LINES_SHORT_OF_CANDIDATES = "LINES_SHORT_OF_CANDIDATES"
WORKERS_RANKED_NOTHING = "WORKERS_RANKED_NOTHING"
RANKED_LINES_OUT_OF_REACH = "RANKED_LINES_OUT_OF_REACH"
SHORT_RANK_LISTS = "SHORT_RANK_LISTS"
LINES_FEW_CANDIDATES = "LINES_FEW_CANDIDATES"
SUPERVISORS_RANKED_NOBODY = "SUPERVISORS_RANKED_NOBODY"
LINK_ONE_SITE = "LINK_ONE_SITE"
QUOTA_COUNTS_NOBODY = "QUOTA_COUNTS_NOBODY"
QUOTA_WITHOUT_BOUNDS = "QUOTA_WITHOUT_BOUNDS"

# The diagnosis codes that name a line that must be filled and cannot be.
_UNFILLABLE = (diagnosis.MANDATORY_LINE_NO_PLACES, diagnosis.MANDATORY_LINE_NO_WORKER, diagnosis.PINS_BLOCK_MANDATORY)


@dataclass(frozen=True)
class WorkerDepth:
    worker_id: str
    name: str
    ranked: int  # lines the worker ranked
    eligible: int  # lines the worker may take (eligible, not forbidden)
    ranked_eligible: int  # ranked lines among those
    ranked_blocked: int = 0  # ranked lines the worker may not take (ineligible or forbidden)
    first_choice_blocked: bool = False  # a line of their first choice is one of those

    @property
    def label(self) -> str:
        """The worker as messages name them: name and id."""
        return _label(self.name, self.worker_id)


@dataclass(frozen=True)
class LinePool:
    job_line_id: str
    name: str
    places: int
    must_be_filled: bool
    pool: int  # workers who may take it
    short_of_places: bool  # pool < places
    cannot_fill: bool  # must be filled, but has no places or nobody may take it (the diagnosis's rule)
    few_candidates: bool = False  # enough for its places, but FEW_CANDIDATES or fewer may take it


@dataclass(frozen=True)
class HealthReport:
    n_workers: int
    n_job_lines: int
    places: int
    depth: list[WorkerDepth]
    lines: list[LinePool]
    workers_without_line: list[str]
    lines_short: list[str]  # pool smaller than places
    mandatory_unfillable: list[str]  # must be filled, no places or empty pool
    silent_supervisors: list[str]  # named on a line, ranked nobody
    findings: list[Finding] = field(default_factory=list)
    ranking_blocked: list[str] = field(default_factory=list)  # ranked a line they may not take
    first_choice_blocked: list[str] = field(default_factory=list)  # ... their first choice among them
    short_rank_lists: list[str] = field(default_factory=list)  # ranked 1..SHORT_RANK_LIST-1 lines
    lines_few_candidates: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == PROBLEM for f in self.findings)

    def depth_histogram(self) -> dict[int, int]:
        """Number of workers by how many lines they ranked."""
        out: dict[int, int] = {}
        for d in self.depth:
            out[d.ranked] = out.get(d.ranked, 0) + 1
        return dict(sorted(out.items()))


def _count(n: int, one: str) -> str:
    """``1 worker``, ``2 workers``, ``1,500 workers``: a count in words, never ``worker(s)``."""
    return f"{n:,} {one if n == 1 else one + 's'}"


def _have(n: int) -> str:
    return "has" if n == 1 else "have"


def _label(name: str, id_: str) -> str:
    return f"{name} ({id_!r})" if name and name != id_ else repr(id_)


def _names(labels: list[str], limit: int = 8, sep: str = ", ") -> str:
    shown = sep.join(labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def check(snapshot: RunSnapshot, problem: ProblemData | None = None) -> HealthReport:
    """The data health of ``snapshot`` (``problem`` may be passed to save building it again)."""
    p = problem or ProblemData.from_snapshot(snapshot)
    may_take = p.eligible & ~p.forbidden  # before pins: a pin narrows a worker to one line
    ranked = p.worker_ranked.sum(axis=1)
    eligible = may_take.sum(axis=1)
    ranked_eligible = (p.worker_ranked & may_take).sum(axis=1)
    blocked = p.worker_ranked & ~may_take
    # First choice: the ranked lines of the worker's best (lowest) rank, ties included.
    ranks = np.where(p.worker_ranked, p.worker_rank, np.inf)
    first = p.worker_ranked & (ranks == ranks.min(axis=1, initial=np.inf)[:, None])
    first_blocked = (first & blocked).any(axis=1)
    depth = [
        WorkerDepth(p.worker_ids[i], p.worker_names[i], int(ranked[i]), int(eligible[i]), int(ranked_eligible[i]),
                    int(blocked[i].sum()), bool(first_blocked[i]))
        for i in range(p.n_workers)
    ]
    worker_label = {d.worker_id: d.label for d in depth}
    line_label = {p.line_ids[j]: _label(p.line_names[j], p.line_ids[j]) for j in range(p.n_lines)}
    # What makes the solve impossible: the diagnosis's own checks, so both name it alike.
    impossible = diagnosis.precheck(p)
    if p.quotas and not any(f.severity == PROBLEM for f in impossible):
        # Flows over the whole run: the report stays quick, the solve's diagnosis checks the rest.
        impossible += diagnosis.quota_ranges(p, seconds=QUOTA_RANGE_SECONDS)
    no_line = [w for f in impossible if f.code == diagnosis.WORKER_NO_LINE for w in f.worker_ids]
    line_index = {jid: j for j, jid in enumerate(p.line_ids)}
    unfillable = sorted({jid for f in impossible if f.code in _UNFILLABLE for jid in f.job_line_ids},
                        key=line_index.__getitem__)
    pool = p.allowed.sum(axis=0)
    lines = [
        LinePool(
            job_line_id=p.line_ids[j],
            name=p.line_names[j],
            places=int(p.capacity[j]),
            must_be_filled=bool(p.mandatory[j]),
            pool=int(pool[j]),
            short_of_places=bool(pool[j] < p.capacity[j]),
            cannot_fill=p.line_ids[j] in unfillable,
            few_candidates=bool(0 < p.capacity[j] <= pool[j] <= FEW_CANDIDATES),
        )
        for j in range(p.n_lines)
    ]
    short = [x.job_line_id for x in lines if x.short_of_places]

    named = sorted({q for j in snapshot.job_lines for q in j.preferencer_ids})
    ranking = {r.preferencer_id for r in snapshot.preferencer_preferences}
    silent = [q for q in named if q not in ranking]

    findings: list[Finding] = list(impossible)
    places = int(p.capacity.sum())
    shy = [jid for jid in short if jid not in unfillable]
    if shy:
        findings.append(Finding(
            LINES_SHORT_OF_CANDIDATES, WARNING,
            f"{_count(len(shy), 'job line')} {_have(len(shy))} fewer workers who may take them than places, so they "
            f"will have vacancies: {_names([line_label[j] for j in shy])}.",
            job_line_ids=tuple(shy),
        ))
    no_ranks = [d.worker_id for d in depth if d.ranked == 0]
    if no_ranks:
        findings.append(Finding(
            WORKERS_RANKED_NOTHING, WARNING,
            f"{_count(len(no_ranks), 'worker')} ranked no job line: {_names([worker_label[w] for w in no_ranks])}. They will be "
            "placed wherever they cost least to others.",
            worker_ids=tuple(no_ranks),
        ))
    stuck = [d for d in depth if d.ranked_blocked]
    stuck_first = [d.worker_id for d in stuck if d.first_choice_blocked]
    if stuck:
        # Most ranked lines out of reach first: those workers are the likeliest to be unhappy.
        ordered = sorted(stuck, key=lambda d: (not d.first_choice_blocked, -d.ranked_blocked, d.worker_id))
        shown = [
            f"{d.label}: {d.ranked_blocked} of {d.ranked} ranked"
            + (", incl. their first choice" if d.first_choice_blocked else "")
            for d in ordered
        ]
        findings.append(Finding(
            RANKED_LINES_OUT_OF_REACH, WARNING,
            f"{_count(len(stuck), 'worker')} ranked job lines they may not take (not eligible, or forbidden): "
            f"{_count(sum(d.ranked_blocked for d in stuck), 'ranked line')} in all; for {len(stuck_first)} of "
            f"them it is their first choice. {_names(shown, limit=6, sep='; ')}. Check their tags "
            "and the lines' rules: those ranks cannot count.",
            worker_ids=tuple(d.worker_id for d in ordered),
        ))
    short_lists = [d for d in depth if 0 < d.ranked < min(SHORT_RANK_LIST, p.n_lines)]
    if short_lists:
        shown = [f"{d.label}: {d.ranked}" for d in sorted(short_lists, key=lambda d: (d.ranked, d.worker_id))]
        findings.append(Finding(
            SHORT_RANK_LISTS, WARNING,
            f"{_count(len(short_lists), 'worker')} ranked fewer than {min(SHORT_RANK_LIST, p.n_lines)} job lines: "
            f"{_names(shown, sep='; ')}. If none of their lines is free, they are placed wherever they cost least "
            "to others: ask them for more.",
            worker_ids=tuple(d.worker_id for d in short_lists),
        ))
    few = [x for x in lines if x.few_candidates]
    if few:
        shown = [f"{line_label[x.job_line_id]}: {x.pool} for {_count(x.places, 'place')}" for x in sorted(few, key=lambda x: (x.pool, x.job_line_id))]
        findings.append(Finding(
            LINES_FEW_CANDIDATES, WARNING,
            f"{_count(len(few), 'job line')} {_have(len(few))} only {FEW_CANDIDATES} or fewer workers who may take them: "
            f"{_names(shown, sep='; ')}. One withdrawal or pin elsewhere may leave them short.",
            job_line_ids=tuple(x.job_line_id for x in few),
        ))
    findings += _links_on_one_site(p)
    findings += _quotas_that_say_nothing(snapshot)
    if silent:
        findings.append(Finding(
            SUPERVISORS_RANKED_NOBODY, WARNING,
            f"{_count(len(silent), 'supervisor')} {'is' if len(silent) == 1 else 'are'} named on a job line but ranked no worker: "
            f"{_names([repr(q) for q in silent])}. Their lines treat every worker the same on the supervisor side.",
        ))
    return HealthReport(
        n_workers=p.n_workers,
        n_job_lines=p.n_lines,
        places=places,
        depth=depth,
        lines=lines,
        workers_without_line=no_line,
        lines_short=short,
        mandatory_unfillable=unfillable,
        silent_supervisors=silent,
        findings=findings,
        ranking_blocked=[d.worker_id for d in stuck],
        first_choice_blocked=stuck_first,
        short_rank_lists=[d.worker_id for d in short_lists],
        lines_few_candidates=[x.job_line_id for x in few],
    )


def _quotas_that_say_nothing(snapshot: RunSnapshot) -> list[Finding]:
    """Quotas that cannot mean what their author meant: one that counts a tag no worker has
    (most likely a misspelt tag: it counts nobody, so a maximum holds whatever the allocation,
    and a minimum cannot be met), and one with neither a minimum nor a maximum."""
    tags = {t for w in snapshot.workers for t in w.qualification_ids}
    out = []
    for q in snapshot.quotas:
        if q.qualification_id is not None and q.qualification_id not in tags:
            effect = (f"so its minimum of {q.min_workers} cannot be met" if q.min_workers > 0
                      else "so its maximum holds whatever the allocation" if q.max_workers is not None
                      else "so it changes nothing")
            out.append(Finding(
                QUOTA_COUNTS_NOBODY, WARNING,
                f"Quota '{q.id}' counts only workers with the tag '{q.qualification_id}', which no worker has: "
                f"it counts nobody, {effect}. Check the tag's spelling against the workers' tags.",
                job_line_ids=tuple(q.job_line_ids or ()),
            ))
        elif q.min_workers == 0 and q.max_workers is None:
            out.append(Finding(
                QUOTA_WITHOUT_BOUNDS, WARNING,
                f"Quota '{q.id}' has neither a minimum nor a maximum number of workers, so it changes nothing. "
                "Give it at least one of them, or remove it.",
                job_line_ids=tuple(q.job_line_ids or ()),
            ))
    return out


def _links_on_one_site(p: ProblemData) -> list[Finding]:
    """Links that only one site can hold: one change there (a place, a pin) makes the run fail."""
    if not p.links:
        return []
    _, holding = diagnosis.link_checks(p)
    out = []
    for link in p.links:
        fits = holding.get(link.id)
        if fits is None or len(fits) != 1:
            continue
        k = fits[0]
        lines = np.flatnonzero(p.site == k)
        out.append(Finding(
            LINK_ONE_SITE, WARNING,
            f"Link '{link.id}': only {diagnosis.site_label(p, k)} can hold "
            f"{diagnosis.link_members(p, link)} together. "
            "Fewer places or a pin there would leave them nowhere: check their eligibility for other sites.",
            worker_ids=tuple(sorted(p.worker_ids[int(s)] for s in link.workers)),
            job_line_ids=tuple(sorted(p.line_ids[int(j)] for j in lines)),
        ))
    return out
