"""Explanations (explanations.md): prices of higher choices, who would move, seed-dependent
workers, override previews. The oracles are brute force over every allocation of tiny runs and
the engine itself with the pair pinned."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator import engine, explain
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot, load_snapshot
from allocator.solvers.base import Status
from tests.helpers.named_runs import DATA, L, W, prefs, problem, tiny_runs, valid_assignments

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from instances import generate_instance  # noqa: E402

QUICK = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def priced_runs(draw, *, max_workers: int = 5, max_lines: int = 4, stability: bool = False) -> ProblemData:
    """Tiny runs that mostly have an allocation and rank lines with many ties (so that prices,
    moves, impossible pairs and equally good allocations all occur), small enough for brute
    force. ``tiny_runs`` explores every rule but is infeasible most of the time."""
    m = draw(st.integers(2, max_workers))
    n = draw(st.integers(2, max_lines))
    wids, lids = [f"w{i}" for i in range(m)], [f"j{k}" for k in range(n)]
    caps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    if sum(caps) < m:
        caps[0] += m - sum(caps)
    mandatory = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    tagged = draw(st.lists(st.booleans(), min_size=m, max_size=m))
    lines = [
        {"id": j, "max_n_workers": c, "must_have_workers": bool(md and c > 0 and k % 2 == 0),
         "preferencer_ids": draw(st.lists(st.sampled_from(["p", "q"]), unique=True))}
        for k, (j, c, md) in enumerate(zip(lids, caps, mandatory, strict=True))
    ]
    elig = []
    if draw(st.booleans()):
        elig.append({"job_line_id": draw(st.sampled_from(lids)), "included_qualification_ids": ["a"]})
    prefs_rows = []
    for w in wids:
        ranked = draw(st.permutations(lids))[: draw(st.integers(0, n))]
        prefs_rows += [{"worker_id": w, "job_line_id": j, "rank": draw(st.integers(1, 3))} for j in ranked]
    pprefs_rows = [
        {"preferencer_id": q, "worker_id": w, "rank": draw(st.integers(1, 2))}
        for q in ("p", "q") for w in draw(st.lists(st.sampled_from(wids), unique=True))
    ]
    data = {
        "format": "allocator-run/1",
        "workers": [{"id": w, "qualification_ids": ["a"] if t else []} for w, t in zip(wids, tagged, strict=True)],
        "job_lines": lines,
        "eligibility": elig,
        "worker_preferences": prefs_rows,
        "preferencer_preferences": pprefs_rows,
        "weightings": [{"worker_id": draw(st.sampled_from(wids)), "job_line_id": draw(st.sampled_from(lids)),
                        "value": draw(st.sampled_from([-1.0, 0.5, 2.0]))} for _ in range(draw(st.integers(0, 1)))],
        "forbids": [{"worker_id": w, "job_line_id": j} for w, j in
                    draw(st.lists(st.tuples(st.sampled_from(wids), st.sampled_from(lids)), unique=True, max_size=1))],
        "settings": {"stability": stability, "rng_seed": draw(st.integers(0, 1000)),
                     "preferencer_weight": draw(st.sampled_from([0.0, 0.3, 0.5, 1.0])),
                     "preference_power": draw(st.sampled_from([1.0, 2.0]))},
    }
    p0 = ProblemData.from_snapshot(RunSnapshot.parse(data))
    open_pairs = [(wids[s], lids[k]) for s, k in zip(*np.nonzero(p0.eligible & ~p0.forbidden), strict=True)]
    if open_pairs and draw(st.booleans()):
        w, j = draw(st.sampled_from(open_pairs))
        data["pins"] = [{"worker_id": w, "job_line_id": j}]
    return ProblemData.from_snapshot(RunSnapshot.parse(data))


def solved(p: ProblemData):
    return engine.solve_problem_data(p)


def enumerate_costs(p: ProblemData, *, stable: bool = False):
    allocs = list(valid_assignments(p, stable=stable))
    return allocs, np.array([p.objective(b) for b in allocs])


def tol(x: float) -> float:
    return 1e-6 * max(1.0, abs(x))


def open_pair(p: ProblemData, s: int, q: int) -> bool:
    return bool(p.eligible[s, q] and not p.forbidden[s, q] and p.pin[s] < 0)


# -- the certificate against brute force -----------------------------------------------------


@QUICK
@given(st.one_of(priced_runs(max_workers=6), tiny_runs(ranks=True)))
def test_certificate_price_of_every_pair_is_the_brute_force_pinned_optimum_minus_the_optimum(p):
    r = solved(p)
    if not r.has_allocation:
        return
    a = r.assignment
    allocs, costs = enumerate_costs(p)
    opt = costs.min()
    cert = explain.Certificate.build(p, a)
    assert cert is not None
    for s in range(p.n_workers):
        for q in range(p.n_lines):
            if q == a[s] or not open_pair(p, s, q):
                continue
            with_pair = [c for b, c in zip(allocs, costs, strict=True) if b[s] == q]
            rep = cert.repair(s, q)
            if not with_pair:
                assert not rep.possible
                continue
            assert rep.possible
            assert rep.price == pytest.approx(min(with_pair) - opt, abs=tol(opt))
            assert rep.worker_side + rep.preferencer_side == pytest.approx(rep.price, abs=tol(opt))
            # The moves are an allocation: applying them to the current one gives a valid
            # allocation with s on q that costs exactly the price more.
            b = a.copy()
            b[s] = q
            for t, fr, to in rep.moves:
                assert t != s and b[t] == fr
                b[t] = to
            assert engine.verify(p, b) == []
            assert p.objective(b) - p.objective(a) == pytest.approx(rep.price, abs=tol(opt))


@QUICK
@given(st.one_of(priced_runs(max_workers=6), tiny_runs(ranks=True)))
def test_seed_dependent_workers_are_exactly_those_whose_line_differs_in_some_optimal_allocation(p):
    r = solved(p)
    if not r.has_allocation:
        assert r.seed_dependent_worker_ids is None
        return
    a = r.assignment
    allocs, costs = enumerate_costs(p)
    opt = costs.min()
    optimal = [b for b, c in zip(allocs, costs, strict=True) if c <= opt + 1e-7 * max(1.0, abs(opt))]
    expected = sorted({p.worker_ids[t] for b in optimal for t in np.flatnonzero(b != a)})
    assert r.seed_dependent_worker_ids == expected


def test_seed_dependent_workers_on_a_named_tie():
    # w1 and w2 rank j1 and j2 the same way and no preferencer speaks: any of the two
    # allocations is optimal, so both outcomes were decided by the seed; w3 alone can take j3.
    p = _tie_problem()
    r = solved(p)
    assert r.seed_dependent_worker_ids == ["w1", "w2"]
    assert r.to_dict()["seed_dependent_worker_ids"] == ["w1", "w2"]
    # The price of forbidding a seed-dependent worker's line is zero.
    s = p.worker_index["w1"]
    other = 1 - int(r.assignment[s])
    assert explain.Certificate.build(p, r.assignment).repair(s, other).price == 0.0


def _tie_problem() -> ProblemData:
    data = {
        "format": "allocator-run/1",
        "settings": {"preferencer_weight": 0.0},
        "workers": [{"id": "w1", "qualification_ids": ["x"]}, {"id": "w2", "qualification_ids": ["x"]}, {"id": "w3"}],
        "job_lines": [{"id": j, "max_n_workers": 1} for j in ("j1", "j2", "j3")],
        "worker_preferences": [
            {"worker_id": "w1", "job_line_id": "j1", "rank": 1}, {"worker_id": "w1", "job_line_id": "j2", "rank": 1},
            {"worker_id": "w2", "job_line_id": "j1", "rank": 1}, {"worker_id": "w2", "job_line_id": "j2", "rank": 1},
            {"worker_id": "w3", "job_line_id": "j3", "rank": 1},
        ],
        "eligibility": [{"job_line_id": "j3", "excluded_qualification_ids": ["x"]}],
    }
    return ProblemData.from_snapshot(RunSnapshot.parse(data))


def test_stable_results_do_not_claim_to_know_the_seed_dependent_workers():
    snap = load_snapshot(DATA / "valid" / "small_network.json").with_settings(stability=True, max_seconds=10)
    r = engine.solve(snap)
    assert r.has_allocation and r.seed_dependent_worker_ids is None
    assert r.to_dict()["seed_dependent_worker_ids"] is None


# -- one worker: pinned re-solves ------------------------------------------------------------


def check_explanation(p: ProblemData, r, *, stable: bool) -> None:
    a = r.assignment
    allocs, costs = enumerate_costs(p, stable=stable)
    opt = costs.min()
    for s, wid in enumerate(p.worker_ids):
        e = explain.explain_worker(r, wid)
        assert e["format"] == "allocator-explain/1" and e["worker_id"] == wid
        assert e["job_line_id"] == p.line_ids[a[s]]
        got = p.worker_rank[s, a[s]]
        expected_lines = [p.line_ids[q] for q in range(p.n_lines) if p.worker_ranked[s, q] and p.worker_rank[s, q] < got]
        assert sorted(h["job_line_id"] for h in e["higher_choices"]) == sorted(expected_lines)
        ranks = [h["worker_rank"] for h in e["higher_choices"]]
        assert ranks == sorted(ranks)
        for h in e["higher_choices"]:
            q = p.line_index[h["job_line_id"]]
            assert h["reason"] in explain.REASONS  # exactly one reason, never "full"
            if not p.eligible[s, q]:
                assert h["reason"] == "ineligible" and h["eligibility"] == p.verdict(s, q).code
                assert h["step"] == p.verdict(s, q).reason.step and h["message"]
                continue
            if p.forbidden[s, q]:
                assert h["reason"] == "forbidden"
                continue
            if p.pin[s] >= 0:
                assert h["reason"] == "pinned" and h["pinned_to"] == p.line_ids[p.pin[s]]
                continue
            with_pair = [c for b, c in zip(allocs, costs, strict=True) if b[s] == q]
            if not with_pair:
                assert h["reason"] == "impossible" and h["price"] is None and h["message"]
                continue
            assert h["reason"] == "price" and h["proven"] is True
            assert h["price"] == pytest.approx(min(with_pair) - opt, abs=tol(opt))
            assert h["price_worker_side"] + h["price_preferencer_side"] == pytest.approx(h["price"], abs=tol(opt))
            # Who would move: exactly the difference with the engine's pinned re-solve.
            pinned = engine.solve_problem_data(explain.pinned_problem(p, s, q))
            b = pinned.assignment
            expected_moves = sorted(
                (p.worker_ids[t], p.line_ids[a[t]], p.line_ids[b[t]], p.worker_rank[t, a[t]], p.worker_rank[t, b[t]])
                for t in np.flatnonzero(a != b) if t != s
            )
            moves = sorted((m["worker_id"], m["from"], m["to"], m["rank_before"], m["rank_after"]) for m in h["moves"])
            assert [m[:3] for m in moves] == [m[:3] for m in expected_moves]
            assert [x for m in moves for x in m[3:]] == pytest.approx([float(x) for m in expected_moves for x in m[3:]])


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(priced_runs(max_workers=4, max_lines=4))
def test_explain_worker_prices_and_moves_are_the_pinned_optimum_and_its_allocation(p):
    r = solved(p)
    if r.has_allocation:
        check_explanation(p, r, stable=False)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(priced_runs(max_workers=4, max_lines=3, stability=True))
def test_explain_worker_with_stability_prices_by_pinned_stable_resolves(p):
    r = solved(p)
    if r.status == Status.OPTIMAL:
        check_explanation(p, r, stable=True)


def test_reasons_on_a_named_run_never_say_full():
    snap = load_snapshot(DATA / "valid" / "demo_40x16.json")
    r = engine.solve(snap)
    seen = set()
    for x in explain.explain_all(r):
        for h in x["higher_choices"]:
            seen.add(h["reason"])
            assert "full" not in str(h.get("message", "")).lower()
    assert {"price", "ineligible", "pinned", "forbidden"} <= seen


def test_certificate_and_pinned_resolves_agree_on_a_demo_worker():
    r = engine.solve(load_snapshot(DATA / "valid" / "demo_40x16.json"))
    fast = {x["worker_id"]: x for x in explain.explain_all(r)}
    for wid in ("w01", "w05", "w17"):
        slow = explain.explain_worker(r, wid)
        assert [h["reason"] for h in slow["higher_choices"]] == [h["reason"] for h in fast[wid]["higher_choices"]]
        for h, g in zip(slow["higher_choices"], fast[wid]["higher_choices"], strict=True):
            assert h.get("price") == pytest.approx(g.get("price"), abs=1e-9)


def test_unknown_worker_is_an_explain_error():
    r = engine.solve(load_snapshot(DATA / "valid" / "small_network.json"))
    with pytest.raises(explain.ExplainError, match="no worker"):
        explain.explain_worker(r, "nobody")


# -- the fast pricing against pinned re-solves on medium runs ---------------------------------


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 10_000))
def test_fast_pricing_agrees_with_pinned_resolves_on_every_pair_of_medium_runs(seed):
    snap = RunSnapshot.parse(generate_instance(40, 14, seed))
    p = ProblemData.from_snapshot(snap)
    r = solved(p)
    assert r.status == Status.OPTIMAL
    a, opt = r.assignment, p.objective(r.assignment)
    cert = explain.Certificate.build(p, a)
    priced = explain.price_all_pairs(r)
    by_pair = dict(zip(zip(priced["workers"].tolist(), priced["lines"].tolist(), strict=True), priced["prices"].tolist(), strict=True))
    for s in range(p.n_workers):
        for q in range(p.n_lines):
            if q == a[s] or not open_pair(p, s, q):
                continue
            pinned = engine.solve_problem_data(explain.pinned_problem(p, s, q), with_seed_dependence=False)
            rep = cert.repair(s, q)
            if pinned.status == Status.INFEASIBLE:
                assert not rep.possible
                continue
            assert rep.possible
            assert rep.price == pytest.approx(p.objective(pinned.assignment) - opt, abs=tol(opt))
            if (s, q) in by_pair:
                assert by_pair[(s, q)] == pytest.approx(rep.price, abs=tol(opt))


# -- stored allocations ----------------------------------------------------------------------


def test_a_stored_allocation_that_is_not_optimal_is_priced_against_the_optimum():
    snap = load_snapshot(DATA / "valid" / "demo_40x16.json")
    r = engine.solve(snap)
    p = r.problem
    alloc = {x.worker_id: x.job_line_id for x in r.allocations}
    # Swap two unpinned workers whose lines both allow the other: a valid, worse allocation.
    a = r.assignment
    for s in range(p.n_workers):
        for t in range(s + 1, p.n_workers):
            if a[s] != a[t] and p.allowed[s, a[t]] and p.allowed[t, a[s]]:
                b = a.copy()
                b[s], b[t] = a[t], a[s]
                if p.objective(b) > p.objective(a) + 1e-6:
                    break
        else:
            continue
        break
    alloc[p.worker_ids[s]], alloc[p.worker_ids[t]] = p.line_ids[a[t]], p.line_ids[a[s]]
    stored = explain.allocation_result(snap, alloc)
    assert stored.status == Status.FEASIBLE  # no certificate: it is not an optimum
    opt, proven = explain.optimum(stored)
    assert proven and opt == pytest.approx(p.objective(a))
    e = explain.explain_worker(stored, p.worker_ids[s])
    assert e["job_line_id"] == p.line_ids[a[t]]
    for h in e["higher_choices"]:
        if h["reason"] == "price":
            q = p.line_index[h["job_line_id"]]
            pinned = engine.solve_problem_data(explain.pinned_problem(p, s, q))
            assert h["price"] == pytest.approx(p.objective(pinned.assignment) - opt, abs=1e-6)


def test_a_stored_allocation_that_breaks_the_rules_is_refused():
    snap = load_snapshot(DATA / "valid" / "small_network.json")
    r = engine.solve(snap)
    alloc = {x.worker_id: x.job_line_id for x in r.allocations}
    alloc["w05"] = "j1" if alloc["w05"] != "j1" else "j3"  # w05 is pinned
    with pytest.raises(explain.ExplainError, match="Solve the run again"):
        explain.allocation_result(snap, alloc)
    del alloc["w05"]
    with pytest.raises(explain.ExplainError, match="w05"):
        explain.allocation_result(snap, alloc)


# -- override preview --------------------------------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(priced_runs(max_workers=4, max_lines=4), st.data())
def test_preview_move_repair_is_the_pinned_optimum_and_breaks_are_what_the_move_alone_breaks(p, data):
    r = solved(p)
    if not r.has_allocation:
        return
    a = r.assignment
    s = data.draw(st.integers(0, p.n_workers - 1))
    q = data.draw(st.integers(0, p.n_lines - 1))
    pv = explain.preview_move(None, r, p.worker_ids[s], p.line_ids[q])
    b = a.copy()
    b[s] = q
    assert pv["objective_move_alone"] == pytest.approx(p.objective(b), rel=1e-9)
    kinds = {x["kind"] for x in pv["breaks"]}
    fill = np.bincount(b, minlength=p.n_lines)
    assert ("capacity" in kinds) == bool(fill[q] > p.capacity[q] and q != a[s])
    assert ("mandatory" in kinds) == bool(p.mandatory[a[s]] and fill[a[s]] == 0)
    assert ("ineligible" in kinds) == (not p.eligible[s, q])
    pin = p.pin.copy()
    pin[s] = q
    moved = dataclasses.replace(p, pin=pin)
    _, costs = enumerate_costs(moved)
    opt = p.objective(a)
    if costs.size == 0:
        assert pv["repair"] is None and pv["diagnosis"]
        return
    rep = pv["repair"]
    assert rep["price"] == pytest.approx(costs.min() - opt, abs=tol(opt))
    full = engine.solve_problem_data(moved)
    assert rep["objective"] == pytest.approx(full.objective, abs=tol(opt))
    c = np.array([p.line_index[rep["allocation"][w]] for w in p.worker_ids])
    assert sorted(m["worker_id"] for m in rep["moves"]) == sorted(p.worker_ids[t] for t in np.flatnonzero(c != a) if t != s)


def test_preview_swap_pins_both_and_prices_the_repair():
    snap = load_snapshot(DATA / "valid" / "demo_40x16.json")
    r = engine.solve(snap)
    p, a = r.problem, r.assignment
    s, t = next((s, t) for s in range(p.n_workers) for t in range(p.n_workers)
                if a[s] != a[t] and p.pin[s] < 0 and p.pin[t] < 0 and p.allowed[s, a[t]] and p.allowed[t, a[s]])
    pv = explain.preview_swap(snap, r.__class__.from_dict(r.to_dict()), p.worker_ids[s], p.worker_ids[t])
    pin = p.pin.copy()
    pin[s], pin[t] = a[t], a[s]
    full = engine.solve_problem_data(dataclasses.replace(p, pin=pin))
    assert pv["repair"]["objective"] == pytest.approx(full.objective, rel=1e-9)
    assert pv["repair"]["price"] == pytest.approx(full.objective - r.objective, abs=1e-6)
    assert pv["breaks"] == []  # both lines keep their fill, both pairs allowed
    with pytest.raises(explain.ExplainError):
        explain.preview_swap(snap, r, p.worker_ids[s], p.worker_ids[s])


def test_preview_move_onto_a_full_line_says_so():
    p = problem(W("w1", "w2"), L(("j1", 1), ("j2", 1)), worker_preferences=prefs(w1={"j1": 1}, w2={"j1": 1}))
    r = solved(p)
    loser = next(w for w in p.worker_ids if r.assignment[p.worker_index[w]] == p.line_index["j2"])
    pv = explain.preview_move(None, r, loser, "j1")
    assert [x["kind"] for x in pv["breaks"]] == ["capacity"]
    assert "1 place" in pv["breaks"][0]["message"]
    assert len(pv["repair"]["moves"]) == 1 and pv["repair"]["moves"][0]["to"] == "j2"
    assert pv["repair"]["price"] == 0.0  # both rank j1 first: an equally good allocation


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(priced_runs(max_workers=4, max_lines=3, stability=True), st.data())
def test_preview_move_with_stability_names_new_blocking_pairs_and_repairs_stably(p, data):
    from allocator.stability import blocking_mask

    r = solved(p)
    if r.status != Status.OPTIMAL:
        return
    a = r.assignment
    s = data.draw(st.integers(0, p.n_workers - 1))
    q = data.draw(st.integers(0, p.n_lines - 1))
    pv = explain.preview_move(None, r, p.worker_ids[s], p.line_ids[q])
    b = a.copy()
    b[s] = q
    new = blocking_mask(p, b) & ~blocking_mask(p, a)
    named = sorted((x["worker_id"], x["job_line_id"]) for x in pv["breaks"] if x["kind"] == "blocking_pair")
    assert named == sorted((p.worker_ids[t], p.line_ids[j]) for t, j in zip(*np.nonzero(new), strict=True))
    pin = p.pin.copy()
    pin[s] = q
    _, costs = enumerate_costs(dataclasses.replace(p, pin=pin), stable=True)
    if costs.size == 0:
        assert pv["repair"] is None
        return
    assert pv["repair"]["proven"] is True
    assert pv["repair"]["price"] == pytest.approx(costs.min() - p.objective(a), abs=tol(p.objective(a)))


@QUICK
@given(priced_runs(max_workers=6))
def test_explain_all_gives_each_higher_choice_its_one_reason_and_the_brute_force_price(p):
    r = solved(p)
    if not r.has_allocation:
        return
    a = r.assignment
    allocs, costs = enumerate_costs(p)
    opt = costs.min()
    out = explain.explain_all(r)
    assert [x["worker_id"] for x in out] == p.worker_ids
    for s, x in enumerate(out):
        assert x["method"] == "certificate"
        for h in x["higher_choices"]:
            q = p.line_index[h["job_line_id"]]
            assert p.worker_ranked[s, q] and p.worker_rank[s, q] < p.worker_rank[s, a[s]]
            expected = ("ineligible" if not p.eligible[s, q] else "forbidden" if p.forbidden[s, q]
                        else "pinned" if p.pin[s] >= 0 else None)
            if expected is None:
                with_pair = [c for b, c in zip(allocs, costs, strict=True) if b[s] == q]
                expected = "price" if with_pair else "impossible"
                if with_pair:
                    assert h["price"] == pytest.approx(min(with_pair) - opt, abs=tol(opt))
                else:
                    assert h["diagnosis"] and h["price"] is None
            assert h["reason"] == expected


def test_explanations_do_not_depend_on_the_order_of_the_input_lists():
    import random

    data = load_snapshot(DATA / "valid" / "demo_40x16.json").model_dump(mode="json")
    shuffled = {k: (random.Random(7).sample(v, len(v)) if isinstance(v, list) else v) for k, v in data.items()}
    r1, r2 = engine.solve(RunSnapshot.parse(data)), engine.solve(RunSnapshot.parse(shuffled))
    assert r1.seed_dependent_worker_ids == r2.seed_dependent_worker_ids
    assert explain.explain_all(r1) == explain.explain_all(r2)
    assert explain.explain_worker(r1, "w01") == explain.explain_worker(r2, "w01")


def test_explain_choice_is_the_one_entry_of_the_full_explanation():
    r = engine.solve(load_snapshot(DATA / "valid" / "demo_40x16.json"))
    full = explain.explain_worker(r, "w01")
    for h in full["higher_choices"]:
        assert explain.explain_choice(r, "w01", h["job_line_id"]) == h
    with pytest.raises(explain.ExplainError, match="ranked above"):
        explain.explain_choice(r, "w01", full["job_line_id"])
