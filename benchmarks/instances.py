"""Benchmark runs: fixed, feasible ``allocator-run/1`` snapshots of several sizes.

The instances come from the demo generator (`allocator.demo`) with a benchmark profile:
every worker ranks 5 to 40 job lines (no short or empty lists), supervisors rank up to 40
workers, ties in all three notations, eligibility rules of every kind, mandatory lines,
weightings, pins and forbids, and a site on every job line. Feasibility is built in (see
`allocator.demo`); the stable instances are built so that a weakly stable allocation exists.

`generate_instance` adds the business rules of spec/business-rules.md on request (links,
quotas, priority tiers, a previous allocation with fewest moves), read off a known valid
allocation (the generator's witness; in stable mode a deferred-acceptance stable
allocation), so that an allocation meeting every rule exists. The named instances have none.

Write them all as JSON files::

    python benchmarks/instances.py --out benchmarks/out
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from allocator.demo import DemoProfile, add_business_rules, demo_snapshot

__all__ = ["INSTANCES", "generate_instance", "named_instance"]

#: The benchmark sizes: name -> (workers, job lines, seed, stability).
INSTANCES: dict[str, tuple[int, int, int, bool]] = {
    "small-140x60": (140, 60, 1, False),
    "medium-1500x300": (1_500, 300, 2, False),
    "large-5000x1000": (5_000, 1_000, 3, False),
    "stable-150x40": (150, 40, 5, True),
    "stable-200x50": (200, 50, 6, True),
    "stable-250x60": (250, 60, 7, True),
    "stable-300x80": (300, 80, 4, True),
    "stable-300x80b": (300, 80, 8, True),
    "stable-1500x300": (1_500, 300, 9, True),
}


def generate_instance(
    n_workers: int,
    n_lines: int,
    seed: int,
    *,
    rank_list: tuple[int, int] = (5, 40),
    ties: bool = True,
    stability: bool = False,
    links: int = 0,
    quotas: int = 0,
    tiers: int = 1,
    fewest_moves: bool = False,
    link_sizes: tuple[int, ...] = (2, 2, 2, 3),
) -> dict[str, Any]:
    """Generate one benchmark run as an ``allocator-run/1`` snapshot dict.

    Parameters
    ----------
    n_workers, n_lines
        Size of the run. The total capacity is 15-25 % above `n_workers` (20-30 % in
        stable mode), spread over the lines, so capacities grow with workers per line.
    seed
        Seed of every random choice; the result is a pure function of the arguments.
    rank_list
        Inclusive range of each worker's rank list length (capped at `n_lines`).
    ties
        Whether some workers and supervisors write ties; without them the snapshot sets
        ``allow_worker_preference_ties`` to false.
    stability
        Set ``settings.stability`` and build the run so that a weakly stable allocation
        exists: fewer tag-restricted lines, no pins or forbids, every mandatory line the
        strict first choice of an eligible worker (see `allocator.demo.DemoProfile`).
    links, quotas, tiers, fewest_moves, link_sizes
        Business rules (`allocator.demo.add_business_rules`): that many linked workers
        (sizes cycling through `link_sizes`), 0-3 quotas whose bounds are the counts of a
        valid allocation (so they bind but hold), priority tiers, and a previous allocation
        with ``fewest_moves`` on. In stable mode they are read off a weakly stable
        allocation (deferred acceptance), which stays stable under them (a linked worker
        forms no blocking pair), so a stable allocation meeting every rule exists.

    Returns
    -------
    dict
        A snapshot that validates with `allocator.snapshot.RunSnapshot.parse` and has an
        allocation satisfying every constraint (and every rule asked for).
    """
    lo, hi = rank_list
    if not 1 <= lo <= hi:
        raise ValueError(f"rank_list must be (low, high) with 1 <= low <= high, got {rank_list}")
    profile = DemoProfile(
        run_id=f"bench-{n_workers}x{n_lines}-seed{seed}" + ("-stable" if stability else ""),
        run_name=f"Benchmark {n_workers:,} workers x {n_lines:,} job lines (seed {seed})"
        + (", stable" if stability else ""),
        rank_list=(lo, hi),
        short_list_share=0.0,
        no_list_share=0.0,
        preferencer_list=(lo, hi),
        ties=ties,
        stability=stability,
        # Stable mode needs every worker to reach as many places as there are workers;
        # fewer restricted lines and more slack keep the generator's top-up small.
        restriction_scale=0.5 if stability else 1.0,
        capacity_slack=(0.20, 0.30) if stability else (0.15, 0.25),
        links=links,
        quotas=quotas,
        tiers=tiers,
        fewest_moves=fewest_moves,
        quota_share=1.0,
        link_sizes=link_sizes,
    )
    data = demo_snapshot(n_workers, n_lines, seed, profile=profile)
    if stability and (links or quotas or tiers > 1 or fewest_moves):
        data = add_business_rules(
            data, stable_allocation(data), np.random.SeedSequence([seed, 12]), links=links,
            quotas=quotas, tiers=tiers, fewest_moves=fewest_moves, link_sizes=link_sizes,
        )
    return data


def stable_allocation(data: dict[str, Any]) -> dict[str, str]:
    """A weakly stable allocation of a stable-mode instance: worker id -> job line id.

    Deferred acceptance with the run's seeded tie-break; the generator's stable profile
    makes it place everyone and fill every mandatory line (checked here).
    """
    from allocator.engine import verify
    from allocator.problem import ProblemData
    from allocator.snapshot import RunSnapshot
    from allocator.solvers.cpsat.heuristic import deferred_acceptance

    problem = ProblemData.from_snapshot(RunSnapshot.parse(data))
    assignment = deferred_acceptance(problem, problem.settings.rng_seed)
    if assignment is None or verify(problem, assignment, stability=True):
        raise RuntimeError(f"deferred acceptance found no stable allocation of {data['run']['id']}")
    return {problem.worker_ids[s]: problem.line_ids[p] for s, p in enumerate(assignment.tolist())}


def named_instance(name: str) -> dict[str, Any]:
    """One of `INSTANCES` by name, e.g. ``named_instance("stable-300x80")``."""
    try:
        workers, lines, seed, stable = INSTANCES[name]
    except KeyError:
        raise KeyError(f"no benchmark instance {name!r}; choose from {sorted(INSTANCES)}") from None
    return generate_instance(workers, lines, seed, stability=stable)


def main(argv: list[str] | None = None) -> None:
    """Write every named instance to ``OUT/<name>.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in INSTANCES:
        path = args.out / f"{name}.json"
        path.write_text(json.dumps(named_instance(name), indent=1), encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main()
