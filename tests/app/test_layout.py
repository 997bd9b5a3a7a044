"""Small helpers every page uses: unique picker labels, data made safe inside markdown."""

from __future__ import annotations

import layout


def test_unique_labels_add_the_id_only_where_labels_clash():
    out = layout.unique_labels([("r-1111111111", "Intake"), ("r-2222222222", "Intake"), ("r-3", "Other")])
    assert out == {"r-1111111111": "Intake [r-111111]", "r-2222222222": "Intake [r-222222]", "r-3": "Other"}
    assert len(set(out.values())) == 3


def test_md_escapes_what_would_format():
    assert layout.md("Dr *Smith* [x](javascript:y) <b>") == r"Dr \*Smith\* \[x\](javascript\:y) \<b\>"
    assert layout.md("Line 1: ED / Gen Med (Westmead)") == r"Line 1\: ED / Gen Med (Westmead)"
    assert layout.md("plain.json") == "plain.json"


def test_every_engine_phase_has_planner_words():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "allocator"
    phases = set()
    for f in root.rglob("*.py"):
        phases |= set(re.findall(r'on_phase\("([^"]+)"\)', f.read_text(encoding="utf-8")))
    assert phases and phases <= set(layout.PHASE_WORDS)


def test_a_solve_outcome_claims_success_only_for_an_allocation():
    head, box = layout.outcome("A", "optimal", True, 2.6, True)
    # Stopped after the proof came in: a finished solve, not "stopped ... (proven)".
    assert (head, box) == ("'A' solved in 2.6 s: best possible, proven", "complete")
    head, box = layout.outcome("A", "feasible", True, 2.6, True)
    assert box == "complete" and head.startswith("'A' stopped after 2.6 s") and "not proven" in head
    # Ended by the work its time limit allows (1.7 s of a 5 s limit): no claim about the clock,
    # and what to do for a better answer.
    head, box = layout.outcome("A", "feasible", False, 1.7, True)
    assert box == "complete" and "not proven" in head and "longer limit" in head
    assert "the time limit came first" not in head
    head, box = layout.outcome("A", "infeasible", False, 0.9, False)
    assert box == "error" and "impossible as set up" in head and "solved" not in head
    head, box = layout.outcome("A", "no_solution", True, 3.0, False)
    assert box == "error" and "before any allocation was found" in head
    head, box = layout.outcome("A", "no_solution", False, 60.0, False)
    assert box == "error" and "no allocation found within the time limit" in head


def test_the_sidebar_says_impossible_not_solved():
    infeasible = {"name": "A", "result": {"status": "infeasible", "allocations": []}, "saved_id": None}
    assert layout.scenario_status("A", infeasible, False, False) == "impossible as set up, not saved yet"
    solved = {"name": "A", "result": {"status": "optimal", "allocations": [{}]}, "saved_id": "s1"}
    assert layout.scenario_status("A", solved, False, False) == "solved, saved"
    assert layout.scenario_status("A", solved, False, True) == "solved, not saved yet"
    assert layout.scenario_status("A", solved, False, True, solved_as_shown=False) == "not solved yet"


def test_a_result_not_proven_says_how_far_it_can_be_from_the_best():
    tiers = [{"objective": "tier", "priority": 1, "value": 300.0, "proven": True},
             {"objective": "tier", "priority": None, "value": 1290.0, "proven": False}]
    # No levels (a run without tiers): the gap alone.
    assert layout.unproven_words({"objective": 105.0, "best_bound": 100.0}) == "at most 5.0 % above the best possible"
    # Levels and a bound: both, where the levels alone dropped the number the solve gave.
    assert layout.unproven_words({"objective": 105.0, "best_bound": 100.0, "metrics": {"levels": tiers}}) == (
        "tier 1 workers: the best possible (proven); workers without a tier: the best found, not proven; "
        "the whole allocation is at most 5.0 % above the best possible")
    # Levels and no bound: the levels say it all (no "not known" beside "proven").
    assert layout.unproven_words({"objective": 105.0, "best_bound": None, "metrics": {"levels": tiers}}) == (
        "tier 1 workers: the best possible (proven); workers without a tier: the best found, not proven")
