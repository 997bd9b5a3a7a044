"""ProblemData: a validated snapshot turned into dense numpy arrays, solver-free.

This is the one place where external ids become indices ``0..n-1`` (workers and job lines in
sorted id order, so the order of the input lists never changes a result), eligibility is
resolved with a reason for every pair, ranks are normalised to fractional ranks and the cost of
every pair is computed exactly as ../shared/spec/allocation-model.md says.

Arrays are ``M x N`` (workers x job lines). Pairs that are not allowed (ineligible or
forbidden) keep their cost values, so that the dashboard can say what a pair would have cost,
but solvers must only use ``allowed`` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from allocator.eligibility import ELIGIBLE_REASONS, Reason, RuleSet, Verdict, eligibility_matrix
from allocator.snapshot import RunSettings, RunSnapshot


def fractional_ranks(group: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional ranks of items within groups, from any notation.

    Parameters
    ----------
    group
        Integer group of each item (a worker, or a preferencer).
    value
        The rank each item was given (lower is better); equal values are ties.

    Returns
    -------
    ranks
        For each item (input order): sorted by value within its group, a tie group occupying
        positions ``a..b`` (from 1) gets ``(a + b) / 2``.
    counts
        ``counts[g]`` is the number of items of group ``g`` (length ``group.max() + 1``).
    """
    group = np.asarray(group, dtype=np.int64)
    value = np.asarray(value, dtype=np.float64)
    n_groups = int(group.max()) + 1 if group.size else 0
    counts = np.bincount(group, minlength=n_groups) if group.size else np.zeros(0, dtype=np.int64)
    if group.size == 0:
        return np.zeros(0), counts
    order = np.lexsort((value, group))
    g, v = group[order], value[order]
    idx = np.arange(g.size)
    new_group = np.ones(g.size, dtype=bool)
    new_group[1:] = g[1:] != g[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, idx, 0))
    pos = idx - group_start + 1  # position within the group, from 1
    new_tie = new_group.copy()
    new_tie[1:] |= v[1:] != v[:-1]
    tie_id = np.cumsum(new_tie) - 1
    tie_first = pos[new_tie]
    tie_last = np.zeros_like(tie_first)
    np.maximum.at(tie_last, tie_id, pos)
    frac_sorted = (tie_first[tie_id] + tie_last[tie_id]) / 2.0
    ranks = np.empty(g.size)
    ranks[order] = frac_sorted
    return ranks, counts


def unranked_rank(n_ranked: np.ndarray | int, pool: int) -> np.ndarray | float:
    """Rank shared by every unranked item when ``n_ranked`` of ``pool`` items were ranked."""
    return (np.asarray(n_ranked, dtype=np.float64) + 1.0 + pool) / 2.0


@dataclass(frozen=True, eq=False)
class QuotaData:
    """One quota of business-rules.md in indices.

    ``lines`` are the quota's job lines (its sites' lines, or its ``job_line_ids``);
    ``counts[s]`` says whether worker ``s`` counts toward it (has ``qualification_id``, or
    every worker when none is given).
    """

    id: str
    lines: np.ndarray  # (k,) int64 line indices, sorted
    counts: np.ndarray  # (M,) bool
    min_workers: int
    max_workers: int | None
    sites: tuple[str, ...] | None = None
    qualification_id: str | None = None

    def covers(self, pair_lines: np.ndarray, pair_workers: np.ndarray) -> np.ndarray:
        """Which pairs ``(pair_workers[k], pair_lines[k])`` the quota counts (bool array)."""
        return np.isin(pair_lines, self.lines) & self.counts[pair_workers]

    def count(self, assignment: np.ndarray) -> int:
        """How many workers of ``assignment`` (line index per worker) the quota counts."""
        a = np.asarray(assignment, dtype=np.int64)
        return int(self.covers(a, np.arange(a.size)).sum())


@dataclass(frozen=True, eq=False)
class LinkData:
    """One link of business-rules.md: workers allocated to lines of one and the same site."""

    id: str
    workers: np.ndarray  # (k,) int64 worker indices, sorted


@dataclass(eq=False)
class ProblemData:
    """Dense, solver-free data of one solve. Build with :meth:`from_snapshot`."""

    snapshot: RunSnapshot
    settings: RunSettings
    worker_ids: list[str]
    line_ids: list[str]
    worker_names: list[str]
    line_names: list[str]
    worker_tags: list[list[str]]
    capacity: np.ndarray  # (N,) int64
    mandatory: np.ndarray  # (N,) bool
    reason: np.ndarray  # (M, N) int8, values of Reason
    forbidden: np.ndarray  # (M, N) bool
    pin: np.ndarray  # (M,) int64, line index or -1
    worker_rank: np.ndarray  # (M, N) fractional rank r_s(p), unranked rule applied
    worker_ranked: np.ndarray  # (M, N) bool: the worker ranked this line themselves
    preferencer_rank: np.ndarray  # (M, N) mean over P(p) of r_q(s) (power 1); nan where P(p) empty
    weight: np.ndarray  # (M, N) wt(p, s)
    dw: np.ndarray  # (M, N) Dw(s, p)
    dp: np.ndarray  # (M, N) Dp(p, s)
    cost: np.ndarray  # (M, N) cost(s, p)
    worker_index: dict[str, int] = field(repr=False)
    line_index: dict[str, int] = field(repr=False)
    rules: RuleSet = field(repr=False)
    # -- business-rules.md (all empty / trivial for a run without them) --------------------
    #: (N,) int64: the site of each line; a line without a site is a site of its own.
    site: np.ndarray | None = field(default=None, repr=False)
    #: Label of each site index: the site's name, or the line's id for a line of its own.
    site_labels: list[str] = field(default_factory=list, repr=False)
    #: (N,) the site named in the snapshot, None for a line without one.
    line_sites: list[str | None] = field(default_factory=list, repr=False)
    #: (M,) int64 tier index, 0 = placed first; workers without a priority are the last tier.
    tier: np.ndarray | None = field(default=None, repr=False)
    #: The priority of each tier index (None for the workers without one).
    tier_priorities: list[int | None] = field(default_factory=list, repr=False)
    links: list[LinkData] = field(default_factory=list, repr=False)
    quotas: list[QuotaData] = field(default_factory=list, repr=False)
    #: (M,) int64: each worker's line in the previous allocation, -1 when none.
    previous: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        m, n = len(self.worker_ids), len(self.line_ids)
        if self.site is None:
            self.site = np.arange(n, dtype=np.int64)
            self.site_labels = list(self.line_ids)
            self.line_sites = [None] * n
        if self.tier is None:
            self.tier = np.zeros(m, dtype=np.int64)
            self.tier_priorities = [None]
        if self.previous is None:
            self.previous = np.full(m, -1, dtype=np.int64)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_snapshot(cls, snap: RunSnapshot) -> ProblemData:
        s = snap.settings
        workers = sorted(snap.workers, key=lambda w: w.id)
        lines = sorted(snap.job_lines, key=lambda j: j.id)
        worker_ids = [w.id for w in workers]
        line_ids = [j.id for j in lines]
        wi = {w: i for i, w in enumerate(worker_ids)}
        li = {j: k for k, j in enumerate(line_ids)}
        m, n = len(worker_ids), len(line_ids)

        rules = RuleSet.from_entries(snap.eligibility)
        worker_tags = [sorted(set(w.qualification_ids)) for w in workers]
        reason = eligibility_matrix(worker_ids, worker_tags, line_ids, rules)

        forbidden = np.zeros((m, n), dtype=bool)
        for f in snap.forbids:
            forbidden[wi[f.worker_id], li[f.job_line_id]] = True
        pin = np.full(m, -1, dtype=np.int64)
        for p in snap.pins:
            pin[wi[p.worker_id]] = li[p.job_line_id]

        # Worker side: fractional ranks over the N job lines of the run.
        prefs = snap.worker_preferences
        pw = np.fromiter((wi[r.worker_id] for r in prefs), dtype=np.int64, count=len(prefs))
        pj = np.fromiter((li[r.job_line_id] for r in prefs), dtype=np.int64, count=len(prefs))
        pv = np.fromiter((r.rank for r in prefs), dtype=np.float64, count=len(prefs))
        ranks, counts = fractional_ranks(pw, pv)
        n_ranked = np.zeros(m, dtype=np.int64)
        n_ranked[: counts.size] = counts
        worker_rank = np.repeat(unranked_rank(n_ranked, n)[:, None], n, axis=1)
        worker_ranked = np.zeros((m, n), dtype=bool)
        worker_rank[pw, pj] = ranks
        worker_ranked[pw, pj] = True

        k = s.preference_power
        dw = worker_rank**k

        # Preferencer side: each named preferencer ranks the M workers of the run.
        named = sorted({q for j in lines for q in j.preferencer_ids})
        qi = {q: t for t, q in enumerate(named)}
        rows = [r for r in snap.preferencer_preferences if r.preferencer_id in qi]
        qg = np.fromiter((qi[r.preferencer_id] for r in rows), dtype=np.int64, count=len(rows))
        qw = np.fromiter((wi[r.worker_id] for r in rows), dtype=np.int64, count=len(rows))
        qv = np.fromiter((r.rank for r in rows), dtype=np.float64, count=len(rows))
        qranks, qcounts = fractional_ranks(qg, qv)
        q_ranked = np.zeros(len(named), dtype=np.int64)
        q_ranked[: qcounts.size] = qcounts
        pref_rank_q = np.repeat(unranked_rank(q_ranked, m)[:, None], m, axis=1)  # (Q, M)
        pref_rank_q[qg, qw] = qranks

        base = np.full((m, n), ((m + 1) / 2.0) ** k)
        preferencer_rank = np.full((m, n), np.nan)
        for j, line in enumerate(lines):
            qs = [qi[q] for q in sorted(set(line.preferencer_ids))]
            if qs:
                base[:, j] = (pref_rank_q[qs] ** k).mean(axis=0)
                preferencer_rank[:, j] = pref_rank_q[qs].mean(axis=0)

        weight = np.zeros((m, n))
        for w in snap.weightings:
            if w.job_line_id is None:
                weight[wi[w.worker_id], :] += w.value
            else:
                weight[wi[w.worker_id], li[w.job_line_id]] += w.value
        dp = base + weight
        a = s.preferencer_weight
        cost = (1.0 - a) * dw + a * dp

        # business-rules.md: sites, tiers, links, quotas, previous allocation.
        line_sites = [j.site for j in lines]
        site_labels: list[str] = []
        site_of_label: dict[tuple[str, str], int] = {}
        site = np.empty(n, dtype=np.int64)
        for k, line in enumerate(lines):
            key = ("site", line.site) if line.site is not None else ("line", line.id)
            if key not in site_of_label:
                site_of_label[key] = len(site_labels)
                site_labels.append(key[1])
            site[k] = site_of_label[key]
        priorities = sorted({w.priority for w in workers if w.priority is not None})
        tier_priorities: list[int | None] = [*priorities, None] if any(w.priority is None for w in workers) else list(priorities)
        if not tier_priorities:
            tier_priorities = [None]
        tier_of = {p: t for t, p in enumerate(tier_priorities)}
        tier = np.array([tier_of[w.priority] for w in workers], dtype=np.int64)
        links = [
            LinkData(link.id, np.array(sorted({wi[w] for w in link.worker_ids}), dtype=np.int64))
            for link in sorted(snap.linked_workers, key=lambda link: link.id)
        ]
        quotas = []
        for q in sorted(snap.quotas, key=lambda q: q.id):
            if q.sites is not None:
                wanted = set(q.sites)
                q_lines = [k for k, line in enumerate(lines) if line.site in wanted]
            else:
                q_lines = sorted({li[j] for j in q.job_line_ids or ()})
            if q.qualification_id is None:
                counts = np.ones(m, dtype=bool)
            else:
                counts = np.array([q.qualification_id in set(t) for t in worker_tags], dtype=bool)
            quotas.append(QuotaData(
                q.id, np.array(q_lines, dtype=np.int64), counts, int(q.min_workers),
                None if q.max_workers is None else int(q.max_workers),
                tuple(sorted(set(q.sites))) if q.sites is not None else None, q.qualification_id,
            ))
        previous = np.full(m, -1, dtype=np.int64)
        for p in snap.previous_allocations:
            previous[wi[p.worker_id]] = li[p.job_line_id]

        return cls(
            snapshot=snap,
            settings=s,
            worker_ids=worker_ids,
            line_ids=line_ids,
            worker_names=[w.name or w.id for w in workers],
            line_names=[j.name or j.id for j in lines],
            worker_tags=worker_tags,
            capacity=np.array([j.max_n_workers for j in lines], dtype=np.int64),
            mandatory=np.array([j.must_have_workers for j in lines], dtype=bool),
            reason=reason,
            forbidden=forbidden,
            pin=pin,
            worker_rank=worker_rank,
            worker_ranked=worker_ranked,
            preferencer_rank=preferencer_rank,
            weight=weight,
            dw=dw,
            dp=dp,
            cost=cost,
            worker_index=wi,
            line_index=li,
            rules=rules,
            site=site,
            site_labels=site_labels,
            line_sites=line_sites,
            tier=tier,
            tier_priorities=tier_priorities,
            links=links,
            quotas=quotas,
            previous=previous,
        )

    # -- derived ------------------------------------------------------------------------
    @property
    def n_tiers(self) -> int:
        return len(self.tier_priorities)

    @property
    def fewest_moves(self) -> bool:
        """Minimise moves from the previous allocation first (the setting, with one given)."""
        return bool(self.settings.fewest_moves) and bool((self.previous >= 0).any())

    @property
    def has_links_or_quotas(self) -> bool:
        """Rules a min-cost flow cannot hold (business-rules.md 6 and 7): CP-SAT's."""
        return bool(self.links) or bool(self.quotas)

    @property
    def lexicographic(self) -> bool:
        """The objective has more than one level: priority tiers, or fewest moves first."""
        return self.n_tiers > 1 or self.fewest_moves

    @property
    def has_business_rules(self) -> bool:
        """Any rule of business-rules.md that changes what is solved (sites alone do not)."""
        return self.has_links_or_quotas or self.lexicographic

    def objective_levels(self, assignment: np.ndarray) -> list[float]:
        """The lexicographic objective of business-rules.md, best level first.

        The number of moves from the previous allocation (when fewest moves is on), then the
        total cost of each tier's workers, tier 1 first. A run without tiers or fewest moves
        has one level, :meth:`objective`.
        """
        a = np.asarray(assignment, dtype=np.int64)
        rows = np.arange(self.n_workers)
        costs = self.cost[rows, a]
        levels: list[float] = []
        if self.fewest_moves:
            had = self.previous >= 0
            levels.append(float(np.count_nonzero(had & (a != self.previous))))
        for t in range(self.n_tiers):
            levels.append(float(costs[self.tier == t].sum()))
        return levels

    @property
    def n_workers(self) -> int:
        return len(self.worker_ids)

    @property
    def n_lines(self) -> int:
        return len(self.line_ids)

    @property
    def eligible(self) -> np.ndarray:
        """(M, N) bool: eligible by the five steps (before forbids)."""
        return ELIGIBLE_REASONS[self.reason]

    @property
    def allowed(self) -> np.ndarray:
        """(M, N) bool: pairs a solver may use (eligible, not forbidden, consistent with pins)."""
        ok = self.eligible & ~self.forbidden
        pinned = self.pin >= 0
        if pinned.any():
            rows = np.flatnonzero(pinned)
            ok[rows, :] = False
            ok[rows, self.pin[rows]] = True
        return ok

    def verdict(self, worker: int, line: int) -> Verdict:
        """The eligibility verdict of one pair, with the tag that decided it."""
        v = self.rules.verdict(self.worker_ids[worker], set(self.worker_tags[worker]), self.line_ids[line])
        assert v.reason == Reason(int(self.reason[worker, line]))
        return v

    def objective(self, assignment: np.ndarray) -> float:
        """Sum of unscaled costs of the chosen pairs (``assignment[s]`` = line index)."""
        rows = np.arange(self.n_workers)
        return float(self.cost[rows, assignment].sum())
