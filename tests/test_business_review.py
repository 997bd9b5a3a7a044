"""Edge cases of the business rules (business-rules.md) found in review: sites named like
a line that is a site of its own, and the like."""

from __future__ import annotations

import numpy as np

from allocator.engine import rule_breaches, verify
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot


def _site_named_like_a_line() -> ProblemData:
    # Line 'X' has no site (a site of its own); line 'j2' is at a site that happens to be
    # called 'X' too. They are two different sites.
    return ProblemData.from_snapshot(RunSnapshot.parse({
        "format": "allocator-run/1",
        "workers": [{"id": "w1"}, {"id": "w2"}],
        "job_lines": [{"id": "X", "max_n_workers": 2}, {"id": "j2", "max_n_workers": 2, "site": "X"}],
        "linked_workers": [{"id": "couple", "worker_ids": ["w1", "w2"]}],
    }))


def test_a_link_split_between_a_line_of_its_own_and_a_site_of_the_same_name_is_a_breach():
    p = _site_named_like_a_line()
    split = np.array([p.line_index["X"], p.line_index["j2"]])
    breaches = rule_breaches(p, split)
    assert len(breaches) == 1
    assert "couple" in breaches[0]
    # Both sites in the planner's words: the line of its own, and the named site.
    assert "job line 'X' (a site of its own)" in breaches[0]
    assert "site 'X'" in breaches[0]
    assert any("couple" in e for e in verify(p, split))
    together = np.array([p.line_index["j2"], p.line_index["j2"]])
    assert rule_breaches(p, together) == []
