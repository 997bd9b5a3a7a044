"""Terse builders for the small, named runs of the engine, result, metrics and diagnosis tests.

``W("w1", "w2", tags={"w2": ["nights"]})`` and ``L(("j1", 2), ("j2", 1, True))`` keep a test's
instance readable at a glance; :func:`snap` validates it like any snapshot.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot

DATA = Path(__file__).resolve().parents[1] / "data"


def W(*ids: str, tags: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Workers ``ids``, with qualification tags from ``tags``."""
    tags = tags or {}
    return [{"id": i, "qualification_ids": list(tags.get(i, []))} for i in ids]


def L(*lines: tuple) -> list[dict[str, Any]]:
    """Job lines from ``(id, capacity[, mandatory[, preferencer_ids]])`` tuples."""
    out = []
    for t in lines:
        d = {"id": t[0], "max_n_workers": t[1]}
        if len(t) > 2:
            d["must_have_workers"] = t[2]
        if len(t) > 3:
            d["preferencer_ids"] = list(t[3])
        out.append(d)
    return out


def prefs(**by_worker: dict[str, float]) -> list[dict[str, Any]]:
    """``prefs(w1={"j1": 1, "j2": 2})`` -> worker_preferences rows."""
    return [
        {"worker_id": w, "job_line_id": j, "rank": r} for w, ranks in by_worker.items() for j, r in ranks.items()
    ]


def pprefs(**by_preferencer: dict[str, float]) -> list[dict[str, Any]]:
    """``pprefs(p1={"w1": 1})`` -> preferencer_preferences rows."""
    return [
        {"preferencer_id": q, "worker_id": w, "rank": r} for q, ranks in by_preferencer.items() for w, r in ranks.items()
    ]


def two_by_two(run_id: str, **extra: Any) -> dict[str, Any]:
    """A two-worker, two-line snapshot dict (10 s limit) that solves at once; ``extra`` keys on top.

    The service, API and worker-fault tests import many of these as pending runs.
    """
    return {
        "format": "allocator-run/1",
        "run": {"id": run_id},
        "settings": {"max_seconds": 10},
        "workers": [{"id": "w1"}, {"id": "w2"}],
        "job_lines": [{"id": "j1", "max_n_workers": 1}, {"id": "j2", "max_n_workers": 1}],
        "worker_preferences": [{"worker_id": "w1", "job_line_id": "j2", "rank": 1}],
        **extra,
    }


def snap(workers, job_lines, **rest: Any) -> RunSnapshot:
    settings = rest.pop("settings", None)
    d: dict[str, Any] = {"format": "allocator-run/1", "run": {"id": rest.pop("run_id", "test-run")}}
    if settings:
        d["settings"] = settings
    d.update(workers=workers, job_lines=job_lines, **rest)
    return RunSnapshot.parse(d)


def problem(workers, job_lines, **rest: Any) -> ProblemData:
    return ProblemData.from_snapshot(snap(workers, job_lines, **rest))


def assignment(p: ProblemData, by_id: dict[str, str]) -> np.ndarray:
    """Line index per worker from ``{worker_id: job_line_id}``."""
    return np.array([p.line_index[by_id[w]] for w in p.worker_ids], dtype=np.int64)


def valid_assignments(p: ProblemData, *, stable: bool = False):
    """Every allocation of a tiny problem that keeps constraints 1-4 (and 5 when ``stable``)."""
    from allocator.stability import blocking_pairs

    choices = [np.flatnonzero(p.allowed[s]).tolist() for s in range(p.n_workers)]
    for combo in itertools.product(*choices):
        a = np.array(combo, dtype=np.int64)
        fill = np.bincount(a, minlength=p.n_lines)
        if (fill > p.capacity).any() or (p.mandatory & (fill == 0)).any():
            continue
        if stable and blocking_pairs(p, a):
            continue
        yield a


def brute_force_optimum(p: ProblemData, *, stable: bool = False) -> float | None:
    """The least objective over every valid allocation, or None when there is none."""
    best = None
    for a in valid_assignments(p, stable=stable):
        v = float(p.cost[np.arange(p.n_workers), a].sum())
        best = v if best is None or v < best else best
    return best


TAGS = ["a", "b"]


@st.composite
def tiny_runs(draw, *, max_workers: int = 5, max_lines: int = 4, ranks: bool = False, stability: bool = False) -> ProblemData:
    """Random tiny runs (every eligibility rule, capacities from 0, mandatory lines, forbids,
    pins on open pairs; with ``ranks``, partial rank lists with ties and supervisors), small
    enough for brute force."""
    m = draw(st.integers(1, max_workers))
    n = draw(st.integers(1, max_lines))
    wids = [f"w{i}" for i in range(m)]
    lids = [f"j{k}" for k in range(n)]
    workers = [{"id": w, "qualification_ids": draw(st.lists(st.sampled_from(TAGS), unique=True))} for w in wids]
    lines = [
        {"id": j, "max_n_workers": draw(st.integers(0, 3)), "must_have_workers": draw(st.booleans()),
         "preferencer_ids": draw(st.lists(st.sampled_from(["p", "q"]), unique=True)) if ranks else []}
        for j in lids
    ]
    elig = []
    for j in lids:
        if draw(st.booleans()):
            elig.append(
                {
                    "job_line_id": j,
                    "included_worker_ids": draw(st.lists(st.sampled_from(wids), unique=True, max_size=2)),
                    "excluded_worker_ids": draw(st.lists(st.sampled_from(wids), unique=True, max_size=2)),
                    "included_qualification_ids": draw(st.lists(st.sampled_from(TAGS), unique=True)),
                    "excluded_qualification_ids": draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=1)),
                }
            )
    pairs = [(w, j) for w in wids for j in lids]
    forbids = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=3))
    base: dict[str, Any] = {
        "format": "allocator-run/1", "workers": workers, "job_lines": lines, "eligibility": elig,
        "forbids": [{"worker_id": w, "job_line_id": j} for w, j in forbids],
        "settings": {"stability": stability, "rng_seed": draw(st.integers(0, 1000)),
                     "preferencer_weight": draw(st.sampled_from([0.0, 0.3, 1.0])),
                     "preference_power": draw(st.sampled_from([1.0, 2.0]))},
    }
    if ranks:
        base["worker_preferences"] = [
            {"worker_id": w, "job_line_id": j, "rank": r}
            for w in wids
            for j, r in zip(draw(st.lists(st.sampled_from(lids), unique=True)),
                            draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)), strict=False)
        ]
        base["preferencer_preferences"] = [
            {"preferencer_id": q, "worker_id": w, "rank": r}
            for q in ("p", "q")
            for w, r in zip(draw(st.lists(st.sampled_from(wids), unique=True)),
                            draw(st.lists(st.integers(1, 3), min_size=m, max_size=m)), strict=False)
        ]
        base["weightings"] = [
            {"worker_id": w, "job_line_id": j, "value": v}
            for w, j, v in draw(st.lists(st.tuples(st.sampled_from(wids), st.sampled_from([None, *lids]),
                                                   st.sampled_from([-1.0, 0.5, 2.0])), max_size=2))
        ]
    p0 = ProblemData.from_snapshot(RunSnapshot.parse(base))
    open_pairs = [(wids[s], lids[k]) for s, k in zip(*np.nonzero(p0.eligible & ~p0.forbidden), strict=True)]
    pins: dict[str, str] = {}
    if open_pairs:
        for w, j in draw(st.lists(st.sampled_from(open_pairs), max_size=2)):
            pins.setdefault(w, j)
    base["pins"] = [{"worker_id": w, "job_line_id": j} for w, j in pins.items()]
    return ProblemData.from_snapshot(RunSnapshot.parse(base))
