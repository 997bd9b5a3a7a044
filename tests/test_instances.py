"""Benchmark instances (benchmarks/instances.py): valid, feasible, as specified."""

from __future__ import annotations

import importlib.util
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from allocator.snapshot import RunSnapshot, SnapshotError
from tests.helpers import snapshot_feasibility as feas

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path):
    # benchmarks/ is not a package: load by path.
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


instances = _load("benchmark_instances", ROOT / "benchmarks" / "instances.py")

SIZES = {
    "small-140x60": (140, 60, False),
    "medium-1500x300": (1_500, 300, False),
    "large-5000x1000": (5_000, 1_000, False),
    "stable-150x40": (150, 40, True),
    "stable-200x50": (200, 50, True),
    "stable-250x60": (250, 60, True),
    "stable-300x80": (300, 80, True),
    "stable-300x80b": (300, 80, True),
    "stable-1500x300": (1_500, 300, True),
}


@pytest.fixture(scope="module", params=sorted(SIZES))
def named(request):
    """Each named benchmark instance, with its name."""
    return request.param, instances.named_instance(request.param)


def test_the_documented_sizes_are_the_named_instances():
    assert {k: (w, n, st) for k, (w, n, _, st) in instances.INSTANCES.items()} == SIZES


def test_named_instance_is_valid_and_sized(named):
    name, snap = named
    workers, lines, stable = SIZES[name]
    parsed = RunSnapshot.parse(snap)
    assert len(parsed.workers) == workers and len(parsed.job_lines) == lines
    assert parsed.settings.stability is stable
    assert snap["run"]["id"].startswith(f"bench-{workers}x{lines}-")


def test_named_instance_is_feasible(named):
    name, snap = named
    allowed = feas.allowed_matrix(snap)
    allocation = feas.flow_allocation(snap, allowed)
    assert allocation is not None, name
    assert feas.allocation_problems(snap, allocation, allowed) == []


def test_named_instance_has_every_ingredient(named):
    name, snap = named
    lists = defaultdict(list)
    for r in snap["worker_preferences"]:
        lists[r["worker_id"]].append(r["rank"])
    lengths = np.array([len(lists[w["id"]]) for w in snap["workers"]])
    assert lengths.min() >= 5 and lengths.max() <= 40, (lengths.min(), lengths.max())
    assert lengths.max() > 30  # the range is used, not just its bottom
    assert any(len(set(v)) < len(v) for v in lists.values()), "ties"
    assert any(j["must_have_workers"] for j in snap["job_lines"])
    assert any(j["preferencer_ids"] for j in snap["job_lines"])
    assert snap["preferencer_preferences"]
    kinds = Counter(
        k for e in snap["eligibility"] for k, v in e.items() if v and k != "job_line_id"
    )
    assert set(kinds) == {
        "included_worker_ids",
        "excluded_worker_ids",
        "included_qualification_ids",
        "excluded_qualification_ids",
    }
    assert snap["weightings"]
    if SIZES[name][2]:
        assert snap["pins"] == [] and snap["forbids"] == []
    else:
        assert snap["pins"] and snap["forbids"]


def test_stable_instance_has_a_weakly_stable_allocation():
    """Deferred acceptance on the spec's costs places everyone, fills every mandatory
    line, and leaves no blocking pair: a certificate that stable mode is feasible."""
    snap = instances.named_instance("stable-300x80")
    allocation = feas.stable_allocation(snap)
    assert feas.allocation_problems(snap, allocation) == []
    assert feas.blocking_pairs(snap, allocation) == []


@pytest.mark.parametrize(("workers", "lines"), [(40, 12), (120, 30), (300, 80), (600, 150)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stable_mode_is_feasible_across_sizes_and_seeds(workers, lines, seed):
    snap = instances.generate_instance(workers, lines, seed, stability=True)
    RunSnapshot.parse(snap)
    allocation = feas.stable_allocation(snap)
    assert feas.allocation_problems(snap, allocation) == []
    assert feas.blocking_pairs(snap, allocation) == []


def test_blocking_pair_check_can_fail():
    """The stability helper finds a blocking pair in an allocation built to have one."""
    snap = instances.generate_instance(40, 12, 0, stability=True)
    allocation = feas.stable_allocation(snap)
    _, ji = feas.index(snap)
    first = {}
    for r in snap["worker_preferences"]:
        if r["rank"] == 1:
            first.setdefault(r["worker_id"], ji[r["job_line_id"]])
    eligible = feas.eligibility_matrix(snap)
    # Move a worker who got their strict first choice onto another line they can do.
    wi, _ = feas.index(snap)
    for wid, p in first.items():
        s = wi[wid]
        others = [q for q in np.flatnonzero(eligible[s]) if q != p]
        if allocation[s] == p and others:
            allocation = allocation.copy()
            allocation[s] = others[0]
            break
    assert feas.blocking_pairs(snap, allocation)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize(("workers", "lines"), [(140, 60), (300, 80), (1_500, 300)])
def test_generate_instance_is_feasible_across_seeds(workers, lines, seed):
    snap = instances.generate_instance(workers, lines, seed)
    RunSnapshot.parse(snap)
    assert feas.flow_allocation(snap) is not None


def test_without_ties_every_list_is_strict_and_the_snapshot_says_so():
    snap = instances.generate_instance(300, 80, 9, ties=False)
    assert snap["settings"]["allow_worker_preference_ties"] is False
    RunSnapshot.parse(snap)  # would reject a tie
    for key, owner in (
        ("worker_preferences", "worker_id"),
        ("preferencer_preferences", "preferencer_id"),
    ):
        lists = defaultdict(list)
        for r in snap[key]:
            lists[r[owner]].append(r["rank"])
        assert all(sorted(v) == list(range(1, len(v) + 1)) for v in lists.values())
    # ...and the validator is what would catch one.
    bad = dict(snap)
    bad["worker_preferences"] = [dict(r) for r in snap["worker_preferences"]]
    bad["worker_preferences"][1]["rank"] = bad["worker_preferences"][0]["rank"]
    with pytest.raises(SnapshotError):
        RunSnapshot.parse(bad)


def test_rank_list_range_is_respected():
    snap = instances.generate_instance(200, 60, 4, rank_list=(3, 8))
    lengths = Counter(r["worker_id"] for r in snap["worker_preferences"])
    assert len(lengths) == 200
    assert min(lengths.values()) >= 3 and max(lengths.values()) <= 8


def test_instances_are_deterministic():
    assert instances.generate_instance(300, 80, 5) == instances.generate_instance(300, 80, 5)
    assert instances.generate_instance(300, 80, 5) != instances.generate_instance(300, 80, 6)


def test_unknown_instance_name_is_a_clear_error():
    with pytest.raises(KeyError, match="stable-300x80"):
        instances.named_instance("huge")
