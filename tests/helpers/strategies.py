"""The shared Hypothesis strategy: small random valid ``allocator-run/1`` snapshots.

``snapshots()`` draws a snapshot *dict* (as read from JSON; parse it with
``RunSnapshot.parse``) that exercises every part of the model on a scale small enough for
brute force: random eligibility rules of every kind (included/excluded workers and tags),
rank lists that are partial, tied and written in several notations (1, 1.5, 2 ...),
preferencers (some ranking nobody, one named by no line), global and specific weightings of
either sign, mandatory lines, capacities from 0 to 3, settings across their ranges, and
sometimes pins and forbids (always valid: pins on eligible, unforbidden pairs).

Nothing is made feasible on purpose: infeasible runs are drawn too, which is what the
solver tests want (the solver must then say so). A test that needs an allocation can
``assume`` one.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot

TAGS = ("nights", "paeds", "rural")
PREFERENCERS = ("sup-a", "sup-b", "sup-c")
# Rank values in every notation: competition/dense integers and fractional halves.
RANKS = (1, 1, 1.5, 2, 2, 2.5, 3, 4, 5, 7)


@st.composite
def snapshots(
    draw: st.DrawFn,
    max_workers: int = 6,
    max_lines: int = 4,
    stability: bool | None = None,
) -> dict[str, Any]:
    """A random valid snapshot dict with 1..max_workers workers and 1..max_lines lines.

    Parameters
    ----------
    max_workers, max_lines
        Size limits (brute force over ``max_lines ** max_workers`` allocations stays cheap
        at the defaults).
    stability
        ``settings.stability``; drawn at random when ``None``.
    """
    n = draw(st.integers(1, max_lines), label="lines")
    m = draw(st.integers(1, max_workers), label="workers")
    capacities = [draw(st.sampled_from((0, 1, 1, 2, 2, 2, 3, 3))) for _ in range(n)]
    # Usually enough places for everyone (topped up at random lines), so most runs are
    # feasible and infeasibility comes from rules, mandatory lines and pins; sometimes not.
    if not draw(st.sampled_from((False, False, False, m > 1)), label="short of places"):
        while sum(capacities) < m:
            capacities[draw(st.integers(0, n - 1))] += 1
    # Ids whose sorted order differs from their creation order ("w10" < "w2").
    worker_ids = [f"w{i}" for i in draw(st.permutations(list(range(2, 2 + m))))]
    line_ids = [f"j{i}" for i in draw(st.permutations(list(range(7, 7 + n))))]

    workers = [
        {"id": w, "name": f"Worker {w}", "qualification_ids": draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=2))}
        for w in worker_ids
    ]
    job_lines = []
    for j, c in zip(line_ids, capacities, strict=True):
        job_lines.append(
            {
                "id": j,
                "name": f"Line {j}",
                "max_n_workers": c,
                "must_have_workers": draw(st.sampled_from((False, False, True))),
                "preferencer_ids": draw(st.lists(st.sampled_from(PREFERENCERS[:2]), unique=True, max_size=2)),
            }
        )

    ties = draw(st.booleans(), label="ties")
    worker_preferences = []
    for w in worker_ids:
        ranked = draw(st.lists(st.sampled_from(line_ids), unique=True, max_size=n))
        if ties:
            values = [draw(st.sampled_from(RANKS)) for _ in ranked]
        else:
            # Distinct ranks, with gaps (competition-style numbering).
            values = draw(st.lists(st.integers(1, 2 * n + 1), unique=True, min_size=len(ranked), max_size=len(ranked)))
        worker_preferences += [{"worker_id": w, "job_line_id": j, "rank": r} for j, r in zip(ranked, values, strict=True)]

    preferencer_preferences = []
    for q in PREFERENCERS:  # sup-c is named by no line: its rankings must have no effect
        ranked = draw(st.lists(st.sampled_from(worker_ids), unique=True, max_size=m))
        preferencer_preferences += [
            {"preferencer_id": q, "worker_id": w, "rank": draw(st.sampled_from(RANKS))} for w in ranked
        ]

    eligibility = []
    # Rules on some lines; the restrictive kinds (tags) less often, so most runs stay feasible.
    some = st.lists(st.sampled_from(worker_ids), unique=True, max_size=2)
    for j in draw(st.lists(st.sampled_from(line_ids), unique=True, max_size=n)):
        eligibility.append(
            {
                "job_line_id": j,
                "included_worker_ids": draw(some),
                "excluded_worker_ids": draw(st.just([]) | some),
                "included_qualification_ids": draw(st.just([]) | st.lists(st.sampled_from(TAGS), unique=True, max_size=2)),
                "excluded_qualification_ids": draw(st.just([]) | st.lists(st.sampled_from(TAGS), unique=True, max_size=1)),
            }
        )

    weightings = [
        {
            "worker_id": draw(st.sampled_from(worker_ids)),
            "job_line_id": draw(st.none() | st.sampled_from(line_ids)),
            "value": draw(st.sampled_from((-3.0, -1.5, -0.5, 0.5, 1.0, 2.5))),
        }
        for _ in range(draw(st.integers(0, 3)))
    ]

    settings = {
        "preferencer_weight": draw(st.sampled_from((0.0, 0.3, 0.5, 1.0))),
        "preference_power": draw(st.sampled_from((0.5, 1.0, 2.0, 3.0))),
        "max_seconds": 30,
        "rng_seed": draw(st.integers(0, 2**31)),
        "allow_worker_preference_ties": ties,
        "stability": draw(st.booleans()) if stability is None else bool(stability),
    }
    snap: dict[str, Any] = {
        "format": "allocator-run/1",
        "run": {"id": "hypothesis", "name": "generated"},
        "settings": settings,
        "workers": workers,
        "job_lines": job_lines,
        "worker_preferences": worker_preferences,
        "preferencer_preferences": preferencer_preferences,
        "eligibility": eligibility,
        "weightings": weightings,
        "pins": [],
        "forbids": [],
    }

    # Pins and forbids, sometimes; always on eligible pairs so the snapshot stays valid.
    if draw(st.booleans(), label="overrides"):
        prob = ProblemData.from_snapshot(RunSnapshot.parse(snap))
        pairs = _pairs(prob.eligible)  # indices in sorted-id order
        if pairs:
            picked = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=3))
            n_pins = draw(st.integers(0, len(picked)))
            pinned: set[int] = set()
            for s, p in picked[:n_pins]:
                if s not in pinned:  # a worker has at most one pin
                    pinned.add(s)
                    snap["pins"].append({"worker_id": prob.worker_ids[s], "job_line_id": prob.line_ids[p]})
            for s, p in picked[n_pins:]:  # distinct from every pinned pair (unique draw)
                snap["forbids"].append({"worker_id": prob.worker_ids[s], "job_line_id": prob.line_ids[p]})
    return snap


def _pairs(mask) -> list[tuple[int, int]]:
    rows, cols = mask.nonzero()
    return list(zip(rows.tolist(), cols.tolist(), strict=True))


def problems(**kwargs: Any) -> st.SearchStrategy[ProblemData]:
    """``ProblemData`` built from :func:`snapshots` (same arguments)."""
    return snapshots(**kwargs).map(lambda d: ProblemData.from_snapshot(RunSnapshot.parse(d)))
