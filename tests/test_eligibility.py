"""Eligibility: the five steps of allocation-model.md, first match wins."""

import random

import pytest

from allocator.eligibility import LineRules, Reason, RuleSet, eligibility_matrix

# One line carrying all four lists, so that the order of the steps matters.
FULL = LineRules(
    included_workers=frozenset({"inc", "inc_and_exc"}),
    excluded_workers=frozenset({"exc", "inc_and_exc"}),
    included_tags=("paediatrics", "rural-ready"),
    excluded_tags=("no-nights",),
)


@pytest.mark.parametrize(
    ("worker", "tags", "rules", "expected", "tag"),
    [
        # step 1 wins over step 2: included and excluded at once -> included
        ("inc_and_exc", set(), FULL, Reason.INCLUDED_WORKER, None),
        # step 1 wins over an excluded tag
        ("inc", {"no-nights"}, FULL, Reason.INCLUDED_WORKER, None),
        # step 2
        ("exc", {"paediatrics"}, FULL, Reason.EXCLUDED_WORKER, None),
        # step 3 wins over step 4: an excluded tag beats an included one
        ("w", {"no-nights", "paediatrics"}, FULL, Reason.EXCLUDED_TAG, "no-nights"),
        # step 4, naming the first matching tag in sorted order
        ("w", {"rural-ready", "paediatrics"}, FULL, Reason.INCLUDED_TAG, "paediatrics"),
        # step 5: included tags exist and none is met
        ("w", {"surgical"}, FULL, Reason.MISSING_INCLUDED_TAG, None),
        # step 5 default: a line with no lists admits everyone
        ("w", {"anything"}, LineRules(), Reason.DEFAULT, None),
        # included workers but no included tags: everyone else without an excluded tag is DEFAULT
        ("other", set(), LineRules(included_workers=frozenset({"inc"})), Reason.DEFAULT, None),
    ],
)
def test_steps(worker, tags, rules, expected, tag):
    v = rules.verdict(worker, tags)
    assert v.reason == expected
    assert v.tag == tag
    assert v.eligible == (expected in (Reason.INCLUDED_WORKER, Reason.INCLUDED_TAG, Reason.DEFAULT))
    assert v.code in v.explain()


def test_missing_tag_explanation_names_required_tags():
    v = FULL.verdict("w", set())
    assert "'paediatrics'" in v.explain() and "'rural-ready'" in v.explain()


@pytest.mark.parametrize("seed", range(25))
def test_matrix_agrees_with_scalar_rules(seed):
    rng = random.Random(seed)
    tags = ["a", "b", "c", "d"]
    workers = [f"w{i}" for i in range(rng.randint(1, 12))]
    worker_tags = [sorted(rng.sample(tags, rng.randint(0, 3))) for _ in workers]
    lines = [f"j{k}" for k in range(rng.randint(1, 6))]
    rules = {}
    for line in lines:
        if rng.random() < 0.2:
            continue
        rules[line] = LineRules(
            included_workers=frozenset(rng.sample(workers, rng.randint(0, min(2, len(workers))))),
            excluded_workers=frozenset(rng.sample(workers, rng.randint(0, min(2, len(workers))))),
            included_tags=tuple(sorted(rng.sample(tags, rng.randint(0, 2)))),
            excluded_tags=tuple(sorted(rng.sample(tags, rng.randint(0, 1)))),
        )
    rs = RuleSet(rules)
    mat = eligibility_matrix(workers, worker_tags, lines, rs)
    for i, w in enumerate(workers):
        for k, line in enumerate(lines):
            assert Reason(int(mat[i, k])) == rs.verdict(w, set(worker_tags[i]), line).reason
