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
        )

    # -- derived ------------------------------------------------------------------------
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
