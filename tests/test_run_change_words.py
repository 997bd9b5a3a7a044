"""What a planner types for a run change, read exactly or refused naming the item (no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from allocator import service
from allocator.store.base import LateWorker, RunChange


def test_ranked_lines_in_order_or_with_explicit_ranks():
    assert service.parse_ranked_lines("j3, j1,j2") == (("j3", 1.0), ("j1", 2.0), ("j2", 3.0))
    assert service.parse_ranked_lines("j3=1, j1=1, j2=2.5") == (("j3", 1.0), ("j1", 1.0), ("j2", 2.5))
    assert service.parse_ranked_lines("") == () and service.parse_ranked_lines(None) == ()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("j1, =2", "Ranked line 2 ('=2') names no job line"),
        ("j1=first", "the rank of job line 'j1' must be a number (got 'first')"),
        ("j1=0", "the rank of job line 'j1' must be at least 1 (got 0)"),
        ("j1=inf", "must be at least 1"),
    ],
)
def test_a_bad_ranked_line_is_refused_naming_it(text, words):
    with pytest.raises(service.ServiceError, match=words.replace("(", r"\(").replace(")", r"\)")):
        service.parse_ranked_lines(text)


def test_a_late_worker_from_what_was_typed():
    w = service.late_worker(" w9 ", " Eve ", "icu, , rural", "j2, j1")
    assert w == LateWorker("w9", "Eve", ("icu", "rural"), (("j2", 1.0), ("j1", 2.0)))
    assert w.to_json()["preferences"] == [{"job_line_id": "j2", "rank": 1.0}, {"job_line_id": "j1", "rank": 2.0}]
    with pytest.raises(service.ServiceError, match="needs an id"):
        service.late_worker("  ")


class NoStore:
    """Refusals happen before the store is asked: any call to it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the store was called ({name}) for input that should be refused first")


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda s: service.withdraw_worker(s, "r", "w1", reason=" "), "reason is required to withdraw worker 'w1'"),
        (lambda s: service.withdraw_worker(s, "r", " ", reason="x"), "Name the worker"),
        (lambda s: service.add_worker(s, "r", LateWorker("w9"), reason=""), "reason is required to add worker 'w9'"),
        (lambda s: service.set_job_line(s, "r", "j1", reason="x"), "say what to change"),
        (lambda s: service.set_job_line(s, "r", "j1", reason="x", max_n_workers=2.7), "whole number, 0 or more (got 2.7)"),
        (lambda s: service.set_job_line(s, "r", "j1", reason="x", max_n_workers=-1), "whole number, 0 or more (got -1)"),
        (lambda s: service.set_job_line(s, "r", "j1", reason=None, must_have_workers=True), "reason is required to change job line 'j1'"),
        # Beyond a name's Limits: the pickers, the Compare and Publish pages show the name.
        (lambda s: service.save_scenario(s, "r", "N" * 501, settings={}, overrides={}, result=None, fingerprint="f"),
         "The scenario's name is 501 characters long; a name has at most 500"),
        (lambda s: service.save_scenario(s, "r", "Plan\x1bB", settings={}, overrides={}, result=None, fingerprint="f"),
         "The scenario's name contains a control character (escape)"),
    ],
)
def test_the_service_refuses_before_asking_the_store(call, words):
    with pytest.raises(service.ServiceError, match=words.replace("(", r"\(").replace(")", r"\)")):
        call(NoStore())


def test_change_words_for_each_kind_of_change():
    at = datetime(2026, 11, 30, tzinfo=UTC)
    add = RunChange(1, "r", "add_worker", "w9", None, {"name": "Eve", "qualification_ids": ["icu"],
                    "preferences": [{"job_line_id": "j2", "rank": 1.0}, {"job_line_id": "j1", "rank": 2.5}]}, "late", None, at)
    assert service.change_words(add) == "Added late worker 'w9' (Eve); tags: icu; ranks: j2 (1), j1 (2.5)."
    bare = RunChange(2, "r", "add_worker", "w8", None, {"name": "", "qualification_ids": [], "preferences": []}, "x", None, at)
    assert service.change_words(bare) == "Added late worker 'w8'; tags: none; ranks: no lines."
