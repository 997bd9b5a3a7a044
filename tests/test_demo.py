"""The demo run: shape, realism, determinism and feasibility (allocator/demo.py)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.demo import _RURAL_SITES as RURAL_SITES
from allocator.demo import (
    DEFAULT_SETTINGS,
    DemoProfile,
    _Generator,
    add_business_rules,
    demo_snapshot,
)
from allocator.snapshot import RunSnapshot
from tests.helpers import business_runs as business
from tests.helpers import snapshot_feasibility as feas


@pytest.fixture(scope="module")
def demo() -> dict:
    """The default demo run (140 workers, 60 job lines, seed 1234)."""
    return demo_snapshot()


def _notation(ranks: list[float]) -> str:
    """How a rank list is written: strict, competition, dense or fractional."""
    if len(set(ranks)) == len(ranks):
        return "strict"
    srt = sorted(ranks)
    if sorted(set(srt)) == list(range(1, len(set(srt)) + 1)):
        return "dense"
    if all(r == 1 + sum(x < r for x in srt) for r in srt):
        return "competition"
    # fractional: a tie group over positions a..b holds (a + b) / 2
    if all(r == (sum(x < r for x in srt) + 1 + sum(x <= r for x in srt)) / 2 for r in srt):
        return "fractional"
    return "other"


# -- shape -----------------------------------------------------------------------------------


def test_default_demo_validates_and_has_the_documented_size(demo):
    snap = RunSnapshot.parse(demo)
    assert len(snap.workers) == 140
    assert len(snap.job_lines) == 60
    assert demo["run"] == {"id": "demo-2027-intake", "name": "2027 PGY1 intake (demo)"}
    assert demo["settings"] == DEFAULT_SETTINGS
    assert snap.settings == RunSnapshot.parse({**demo, "settings": {}}).settings


def test_demo_is_a_pure_function_of_its_arguments():
    assert demo_snapshot() == demo_snapshot()
    assert demo_snapshot(300, 90, 7) == demo_snapshot(300, 90, 7)
    assert demo_snapshot(seed=1) != demo_snapshot(seed=2)
    # Global numpy state plays no part.
    np.random.seed(0)
    a = demo_snapshot(50)
    np.random.seed(99)
    assert demo_snapshot(50) == a


@pytest.mark.parametrize(
    ("workers", "lines"),
    [
        (5, 2),  # smallest supported intake: lines = max(2, round(5 * 0.43))
        (10, 4),
        (140, 60),
        (1000, 430),
    ],
)
def test_lines_scale_with_workers_when_not_given(workers, lines):
    assert len(demo_snapshot(workers)["job_lines"]) == lines


@pytest.mark.parametrize("bad", [{"workers": 0}, {"workers": 10, "lines": 0}])
def test_sizes_below_one_are_rejected(bad):
    with pytest.raises(ValueError):
        demo_snapshot(**bad)


# -- realism -----------------------------------------------------------------------------------


def test_capacity_exceeds_the_intake_by_15_to_25_percent(demo):
    for snap in (demo, demo_snapshot(1000, seed=5), demo_snapshot(5000, seed=6)):
        total = sum(j["max_n_workers"] for j in snap["job_lines"])
        excess = total / len(snap["workers"]) - 1
        assert 0.145 <= excess <= 0.255, excess
    assert {j["max_n_workers"] for j in demo["job_lines"]} <= {1, 2, 3, 4}


def test_workers_have_distinct_realistic_names_and_tags(demo):
    names = [w["name"] for w in demo["workers"]]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Z][\w'-]+( [A-Z][\w' -]+)+", n) for n in names), names
    tags = Counter(t for w in demo["workers"] for t in w["qualification_ids"])
    for tag in ("rural-ready", "paediatrics", "nights", "no-nights", "ALS-certified",
                "psychiatry-interest", "surgical-track"):  # fmt: skip
        assert tags[tag] > 0, tag
    for w in demo["workers"]:
        q = set(w["qualification_ids"])
        assert not {"nights", "no-nights"} <= q
        assert len(q & {"PGY1", "PGY2"}) == 1


def test_job_lines_are_named_rotations_and_nights_and_ed_are_mandatory(demo):
    pattern = re.compile(r"Line (\d+): [^/()]+( / [^/()]+){2} \([A-Z][\w ]+\)")
    for k, line in enumerate(demo["job_lines"], start=1):
        m = pattern.fullmatch(line["name"])
        assert m and int(m.group(1)) == k, line["name"]
        first_term = line["name"].split(": ")[1].split(" / ")[0]
        if first_term in ("ED", "Nights"):
            assert line["must_have_workers"], line["name"]
    assert any(not j["must_have_workers"] for j in demo["job_lines"])


def test_supervisors_rank_workers_and_are_named_as_doctors(demo):
    named = {q for j in demo["job_lines"] for q in j["preferencer_ids"]}
    assert named and all(re.fullmatch(r"Dr [A-Z]\. [\w' -]+ \([\w &-]+\)", q) for q in named)
    assert all("," not in q for q in named)  # ids travel in comma-separated workbook cells
    ranked = {r["preferencer_id"] for r in demo["preferencer_preferences"]}
    assert named - ranked == set() or len(named & ranked) >= len(named) // 2
    assert ranked - named, "one supervisor outside the run ranks too (allowed, no effect)"
    assert any(not j["preferencer_ids"] for j in demo["job_lines"])
    assert any(len(j["preferencer_ids"]) == 2 for j in demo["job_lines"])


def test_eligibility_rules_of_every_kind(demo):
    by_line = {e["job_line_id"]: e for e in demo["eligibility"]}
    for key in ("included_worker_ids", "excluded_worker_ids", "included_qualification_ids",
                "excluded_qualification_ids"):  # fmt: skip
        assert any(e[key] for e in demo["eligibility"]), key
    for line in demo["job_lines"]:
        terms = line["name"].split(": ")[1].split(" (")[0].split(" / ")
        rules = by_line.get(line["id"], {})
        if terms[0] == "Paediatrics":
            assert "paediatrics" in rules["included_qualification_ids"]
        if terms[0] == "Rural Gen Med":
            assert "rural-ready" in rules["included_qualification_ids"]
        if terms[0] == "Nights":
            assert "no-nights" in rules["excluded_qualification_ids"]
    # Included workers without included tags: step 5 admits everyone else (DEFAULT).
    big = demo_snapshot(1500, seed=3)
    assert any(
        e["included_worker_ids"] and not e["included_qualification_ids"] for e in big["eligibility"]
    )


def test_weightings_are_global_and_specific_positive_and_negative(demo):
    rows = demo["weightings"]
    assert any(r["job_line_id"] is None for r in rows)
    assert any(r["job_line_id"] is not None for r in rows)
    assert any(r["value"] > 0 for r in rows) and any(r["value"] < 0 for r in rows)
    assert any(r["value"] == -2.0 and r["job_line_id"] for r in rows), "family reason near a site"


def test_rank_lists_are_partial_and_use_every_tie_notation(demo):
    lists = defaultdict(list)
    for r in demo["worker_preferences"]:
        lists[r["worker_id"]].append(r["rank"])
    lengths = [len(lists[w["id"]]) for w in demo["workers"]]
    assert max(lengths) <= 20
    assert 5 <= float(np.median(lengths)) <= 20
    assert sum(1 <= n < 5 for n in lengths) >= 3, "some short lists"
    notations = Counter(_notation(v) for v in lists.values())
    assert notations["other"] == 0
    for kind in ("strict", "competition", "dense", "fractional"):
        assert notations[kind] > 0, (kind, notations)
    assert notations["strict"] > len(lists) / 2
    plists = defaultdict(list)
    for r in demo["preferencer_preferences"]:
        plists[r["preferencer_id"]].append(r["rank"])
    assert Counter(_notation(v) for v in plists.values())["strict"] > 0


def test_notation_classifier_tells_the_notations_apart():
    assert _notation([1, 1, 3]) == "competition"
    assert _notation([1, 1, 2]) == "dense"
    assert _notation([1.5, 1.5, 3]) == "fractional"
    assert _notation([1, 3, 3, 3, 5]) == "fractional"
    assert _notation([1, 2, 3]) == "strict"
    assert _notation([2, 2, 2]) == "fractional"
    assert _notation([1, 4, 4]) == "other"


def test_overrides_keep_the_run_valid(demo):
    assert demo["pins"] and demo["forbids"]
    pins = {(p["worker_id"], p["job_line_id"]) for p in demo["pins"]}
    forbids = {(p["worker_id"], p["job_line_id"]) for p in demo["forbids"]}
    assert not pins & forbids
    elig = feas.eligibility_matrix(demo)
    wi, ji = feas.index(demo)
    assert all(elig[wi[s], ji[p]] for s, p in pins)


# -- feasibility -------------------------------------------------------------------------------


def test_default_demo_is_feasible_by_flow_and_by_assignment(demo):
    allowed = feas.allowed_matrix(demo)
    assert allowed.any(axis=1).all(), "every worker has an eligible line"
    caps = np.array([j["max_n_workers"] for j in demo["job_lines"]])
    must = np.array([j["must_have_workers"] for j in demo["job_lines"]])
    assert allowed[:, must].any(axis=0).all(), "every mandatory line has an eligible worker"
    by_flow = feas.flow_allocation(demo, allowed)
    assert by_flow is not None
    assert feas.allocation_problems(demo, by_flow, allowed) == []
    assert feas.lsa_allocation(demo, allowed) is not None
    assert caps.sum() >= len(demo["workers"])


def test_checker_detects_infeasible_runs(demo):
    """The feasibility helpers can say no: these runs have no allocation."""
    no_room = {**demo, "job_lines": [{**j, "max_n_workers": 1} for j in demo["job_lines"]]}
    assert feas.flow_allocation(no_room) is None
    assert feas.lsa_allocation(no_room) is None
    # A mandatory line whose only eligible worker is also needed elsewhere (Hall's condition).
    tiny = {
        "format": "allocator-run/1",
        "workers": [{"id": "a"}, {"id": "b"}],
        "job_lines": [
            {"id": "x", "max_n_workers": 2, "must_have_workers": True},
            {"id": "y", "max_n_workers": 2, "must_have_workers": True},
        ],
        "eligibility": [
            {"job_line_id": "x", "included_qualification_ids": ["t"]},
            {"job_line_id": "y", "included_qualification_ids": ["t"]},
        ],
    }
    tiny["workers"][0]["qualification_ids"] = ["t"]
    assert feas.flow_allocation(tiny) is None
    assert feas.lsa_allocation(tiny) is None
    tiny["workers"][1]["qualification_ids"] = ["t"]
    assert feas.flow_allocation(tiny) is not None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    workers=st.integers(5, 400),
    lines_factor=st.one_of(st.none(), st.floats(0.1, 2.0)),
    seed=st.integers(0, 2**32 - 1),
)
def test_demo_is_valid_and_feasible_across_sizes_and_seeds(workers, lines_factor, seed):
    lines = None if lines_factor is None else max(1, round(workers * lines_factor))
    snap = demo_snapshot(workers, lines, seed)
    RunSnapshot.parse(snap)
    allocation = feas.flow_allocation(snap)
    assert allocation is not None
    assert feas.allocation_problems(snap, allocation) == []


@pytest.mark.parametrize("workers", [1, 2, 3, 5, 8, 13])
def test_tiny_intakes_are_valid_and_feasible(workers):
    for seed in range(20):
        snap = demo_snapshot(workers, seed=seed)
        RunSnapshot.parse(snap)
        assert feas.flow_allocation(snap) is not None, seed
        assert feas.lsa_allocation(snap) is not None, seed


def test_forty_thousand_workers_with_a_verified_witness():
    """The largest size: generated, valid, and its built-in witness allocation checks out.

    A dense feasibility check is too big here, so the generator's own witness is checked
    pair by pair against the five-step rule, capacities and mandatory fills.
    """
    gen = _Generator(40_000, 17_200, 1234, DemoProfile())
    snap = gen.snapshot()
    assert snap == demo_snapshot(40_000)
    assert len(snap["job_lines"]) == 17_200
    RunSnapshot.parse(snap)
    wi, ji = feas.index(snap)
    tags = [set(w["qualification_ids"]) for w in snap["workers"]]
    rules = {e["job_line_id"]: e for e in snap["eligibility"]}
    lid = [j["id"] for j in snap["job_lines"]]
    wid = [w["id"] for w in snap["workers"]]
    forbids = {(f["worker_id"], f["job_line_id"]) for f in snap["forbids"]}
    for pin in snap["pins"]:
        assert gen.witness[wi[pin["worker_id"]]] == ji[pin["job_line_id"]]
    for s, p in enumerate(gen.witness.tolist()):
        e = rules.get(lid[p], {})
        if wid[s] in e.get("included_worker_ids", ()):
            continue
        assert wid[s] not in e.get("excluded_worker_ids", ())
        assert not tags[s] & set(e.get("excluded_qualification_ids", ()))
        inc = set(e.get("included_qualification_ids", ()))
        assert not inc or tags[s] & inc
        assert (wid[s], lid[p]) not in forbids
    caps = np.array([j["max_n_workers"] for j in snap["job_lines"]])
    must = np.array([j["must_have_workers"] for j in snap["job_lines"]])
    fill = np.bincount(gen.witness, minlength=len(lid))
    assert (fill <= caps).all()
    assert (fill[must] >= 1).all()


# -- business rules (spec/business-rules.md) --------------------------------------------------


def test_every_job_line_names_the_site_in_its_name(demo):
    for snap in (demo, demo_snapshot(300, 90, 7)):
        for line in snap["job_lines"]:
            assert line["name"].endswith(f"({line['site']})"), line
    rural = {j["site"] for j in demo["job_lines"] if j["name"].split(": ")[1].startswith("Rural")}
    assert rural and rural <= set(RURAL_SITES)


def test_the_demo_shows_every_rule_at_work(demo):
    """Two couples, a regional minimum on the rural sites and two priority tiers."""
    wi, _ = feas.index(demo)
    links = demo["linked_workers"]
    assert [len(x["worker_ids"]) for x in links] == [2, 2]
    assert len({w for x in links for w in x["worker_ids"]}) == 4
    (quota,) = demo["quotas"]
    assert quota["id"] == "rural-minimum" and quota["min_workers"] >= 1
    sites = {j["site"] for j in demo["job_lines"]}
    assert set(quota["sites"]) == sites & set(RURAL_SITES)
    places = sum(j["max_n_workers"] for j in demo["job_lines"] if j["site"] in quota["sites"])
    assert quota["min_workers"] <= places
    priorities = Counter(w.get("priority") for w in demo["workers"])
    assert set(priorities) == {1, None}
    assert 0.15 * len(demo["workers"]) <= priorities[1] <= 0.45 * len(demo["workers"])
    assert "previous_allocations" not in demo and "fewest_moves" not in demo["settings"]
    snap = RunSnapshot.parse(demo)
    assert len(snap.linked_workers) == 2 and len(snap.quotas) == 1


@pytest.mark.parametrize(("workers", "lines", "seed"), [(140, 60, 1234), (60, None, 3), (300, 90, 7), (8, None, 2)])
def test_the_witness_meets_every_link_and_quota(workers, lines, seed):
    """The generator's own allocation keeps constraints 1-4 and every rule it wrote."""
    n = lines if lines is not None else max(2, round(workers * 0.43))
    gen = _Generator(workers, n, seed, DemoProfile())
    snap = gen.snapshot()
    assert snap == demo_snapshot(workers, lines, seed)
    RunSnapshot.parse(snap)
    witness = {gen.worker_ids[s]: gen.line_ids[p] for s, p in enumerate(gen.witness.tolist())}
    wi, ji = feas.index(snap)
    as_array = np.array([ji[witness[w["id"]]] for w in snap["workers"]])
    assert feas.allocation_problems(snap, as_array) == []
    assert business.rule_problems(snap, witness) == []


def test_rule_checker_catches_a_split_couple_and_a_missed_minimum(demo):
    gen = _Generator(140, 60, 1234, DemoProfile())
    gen.snapshot()
    witness = {gen.worker_ids[s]: gen.line_ids[p] for s, p in enumerate(gen.witness.tolist())}
    a, b = demo["linked_workers"][0]["worker_ids"]
    site = {j["id"]: j["site"] for j in demo["job_lines"]}
    rural = set(demo["quotas"][0]["sites"])
    elsewhere = next(j for j in site if site[j] != site[witness[a]] and site[j] not in rural)
    metro = next(j for j in site if site[j] not in rural)
    on_rural = [w for w, j in witness.items() if site[j] in rural and w not in (a, b)]
    broken = {**witness, a: elsewhere, on_rural[0]: metro}
    problems = business.rule_problems(demo, broken)
    assert any("couple-1" in p for p in problems)
    assert any("rural-minimum" in p for p in problems)


def test_stable_and_benchmark_profiles_carry_no_rules():
    stable = demo_snapshot(60, 20, 4, profile=DemoProfile(stability=True))
    plain = demo_snapshot(60, 20, 4, profile=DemoProfile(links=0, quotas=0, tiers=1))
    for snap in (stable, plain):
        assert "linked_workers" not in snap and "quotas" not in snap
        assert all("priority" not in w for w in snap["workers"])
        assert all(j["site"] for j in snap["job_lines"])


def test_business_rules_change_nothing_else(demo):
    """The rules' random stream is a stream of its own: the rest of the demo is unchanged."""
    plain = demo_snapshot(profile=DemoProfile(links=0, quotas=0, tiers=1))
    stripped = {k: v for k, v in demo.items() if k not in ("linked_workers", "quotas")}
    stripped["workers"] = [{k: v for k, v in w.items() if k != "priority"} for w in demo["workers"]]
    assert stripped == plain


def test_add_business_rules_rejects_impossible_requests(demo):
    witness = {w["id"]: demo["job_lines"][0]["id"] for w in demo["workers"]}
    for bad in ({"quotas": 4}, {"tiers": 0}, {"link_sizes": (5,)}):
        with pytest.raises(ValueError):
            add_business_rules(demo, witness, 1, **bad)
