"""Runs with the business rules of spec/business-rules.md, for tests (helper, not a test module).

- `generate_instance`: ``benchmarks/instances.generate_instance`` (loaded by path: benchmarks/
  is not a package), with ``links=``, ``quotas=``, ``tiers=``, ``fewest_moves=``;
- `business_problem`: the same as :class:`~allocator.problem.ProblemData`;
- `rule_problems`: what an allocation breaks of links and quotas, in words, written from the
  spec alone on the snapshot dict (independent of the engine's ``rule_breaches``);
- `engine_assignment`: the engine's allocation (a :class:`~allocator.result.Result`) as line
  indices of a ``ProblemData``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot

ROOT = Path(__file__).resolve().parents[2]


@cache
def instances() -> ModuleType:
    """``benchmarks/instances.py`` as a module."""
    spec = importlib.util.spec_from_file_location(
        "benchmark_instances", ROOT / "benchmarks" / "instances.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def generate_instance(n_workers: int, n_lines: int, seed: int, **rules: Any) -> dict[str, Any]:
    """A benchmark run with business rules (see ``benchmarks/instances.generate_instance``)."""
    return instances().generate_instance(n_workers, n_lines, seed, **rules)


def business_problem(n_workers: int, n_lines: int, seed: int, **rules: Any) -> ProblemData:
    """`generate_instance` parsed and built into the solver's data."""
    return ProblemData.from_snapshot(
        RunSnapshot.parse(generate_instance(n_workers, n_lines, seed, **rules))
    )


def rule_problems(snap: Mapping[str, Any], allocation: Mapping[str, str]) -> list[str]:
    """The links and quotas that `allocation` (worker id -> job line id) breaks, in words.

    A job line without a site is a site of its own (business-rules.md), so two workers on two
    different site-less lines are on different sites.
    """
    site = {
        j["id"]: ("site", j["site"]) if j.get("site") is not None else ("line", j["id"])
        for j in snap["job_lines"]
    }
    tags = {w["id"]: set(w.get("qualification_ids", [])) for w in snap["workers"]}
    out = []
    for link in snap.get("linked_workers", []):
        sites = {site[allocation[w]] for w in link["worker_ids"]}
        if len(sites) != 1:
            out.append(f"link {link['id']} is split over {sorted(s[1] for s in sites)}")
    for q in snap.get("quotas", []):
        if q.get("sites") is not None:
            lines = {j for j, s in site.items() if s[0] == "site" and s[1] in set(q["sites"])}
        else:
            lines = set(q["job_line_ids"])
        qual = q.get("qualification_id")
        count = sum(
            1 for w, j in allocation.items() if j in lines and (qual is None or qual in tags[w])
        )
        low, high = q.get("min_workers", 0), q.get("max_workers")
        if count < low or (high is not None and count > high):
            out.append(f"quota {q['id']} counts {count}, outside [{low}, {high}]")
    return out


def engine_assignment(problem: ProblemData, result: Any) -> np.ndarray:
    """The line index of each worker of `problem` in an engine result's allocations."""
    a = np.full(problem.n_workers, -1, dtype=np.int64)
    for x in result.allocations:
        a[problem.worker_index[x.worker_id]] = problem.line_index[x.job_line_id]
    return a
