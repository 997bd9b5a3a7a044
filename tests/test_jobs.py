"""The job runner: real solves in the background, one at a time, stoppable, with progress."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from allocator.demo import NO_RULES, demo_snapshot
from allocator.engine import solve
from allocator.jobs import JobRunner, JobStatus
from allocator.snapshot import RunSnapshot, SnapshotError
from tests.helpers.named_runs import L, W, prefs, snap


@pytest.fixture
def runner():
    r = JobRunner()
    yield r
    r.shutdown()


def tiny(run_id: str = "tiny", alpha: float = 0.0) -> RunSnapshot:
    """Three workers, two lines: w1 and w2 both want j1 (one place), w3 wants j2."""
    return snap(
        W("w1", "w2", "w3"),
        L(("j1", 1), ("j2", 2)),
        worker_preferences=prefs(w1={"j1": 1, "j2": 2}, w2={"j1": 1, "j2": 2}, w3={"j2": 1, "j1": 2}),
        settings={"preferencer_weight": alpha},
        run_id=run_id,
    )


def slow_stable() -> RunSnapshot:
    """A stable-matching run that CP-SAT works on for seconds (improving as it goes)."""
    # Without the demo's business rules: this run is about the job runner, not links or tiers.
    d = demo_snapshot(workers=200, seed=7, profile=NO_RULES)
    d["pins"] = []  # without pins a stable allocation exists, so incumbents arrive
    d["settings"].update(stability=True, max_seconds=60)
    return RunSnapshot.parse(d)


def wait_until(pred, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_solve_runs_in_the_background_and_its_result_matches_a_direct_solve(runner):
    s = tiny()
    job = runner.submit(s, label="tiny")
    first = runner.progress(job)
    assert first.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE)
    p = runner.wait(job, timeout=30)
    assert p.status is JobStatus.DONE and p.finished
    assert p.error is None and p.label == "tiny"
    direct = solve(s).to_dict()
    got = p.result.to_dict()
    assert got["allocations"] == direct["allocations"]
    assert got["objective"] == direct["objective"]
    assert p.elapsed > 0 and p.started_at is not None and p.finished_at >= p.started_at


def test_progress_is_an_immutable_copy(runner):
    job = runner.submit(tiny())
    p = runner.wait(job, timeout=30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.status = JobStatus.FAILED  # type: ignore[misc]
    assert isinstance(p.history, tuple)
    again = runner.progress(job)
    assert again == p and again is not p


def test_solves_queue_one_at_a_time_in_submission_order():
    order: list[str] = []
    running = 0
    overlap = []
    lock = threading.Lock()

    def recording_solve(s, options):
        nonlocal running
        with lock:
            running += 1
            overlap.append(running)
            order.append(s.run.id)
        try:
            return solve(s, options)
        finally:
            with lock:
                running -= 1

    r = JobRunner(solve=recording_solve)
    try:
        first = r.submit(slow_stable(), label="slow")
        wait_until(lambda: r.progress(first).status is JobStatus.RUNNING)
        queued = [r.submit(tiny(f"run-{k}"), label=f"q{k}") for k in range(3)]
        positions = [r.progress(j).queue_position for j in queued]
        assert positions == [1, 2, 3]  # solves ahead of each, the running one included
        assert all(r.progress(j).status is JobStatus.QUEUED for j in queued)
        assert r.queue_length() == 4
        r.stop(first)
        finals = [r.wait(j, timeout=30) for j in queued]
        assert [f.status for f in finals] == [JobStatus.DONE] * 3
        assert order == ["demo-2027-intake", "run-0", "run-1", "run-2"]
        assert max(overlap) == 1  # never two solves at once
        # Each queued job started only after the one before it finished.
        starts = [f.started_at for f in finals]
        assert starts == sorted(starts)
    finally:
        r.shutdown()


def test_stop_keeps_the_best_allocation_found_so_far_and_history_grows(runner):
    job = runner.submit(slow_stable(), label="stable")
    # Wait until CP-SAT has reported an allocation, watching the history grow meanwhile.
    lengths = []

    def has_incumbent():
        p = runner.progress(job)
        lengths.append(len(p.history))
        return p if p.objective is not None or p.finished else None

    p = wait_until(has_incumbent, timeout=45)
    assert not p.finished, "the stable solve finished before it could be stopped; make it harder"
    assert lengths == sorted(lengths) and lengths[-1] >= 1
    times = [pt.elapsed for pt in p.history]
    assert times == sorted(times)
    t_stop = time.monotonic()
    assert runner.stop(job) is True
    final = runner.wait(job, timeout=20)
    assert time.monotonic() - t_stop < 10
    assert final.status is JobStatus.STOPPED and final.stop_requested
    res = final.result.to_dict()
    assert res["status"] == "feasible"  # an allocation, not proven best
    assert len(res["allocations"]) == 200
    assert len(final.history) >= len(p.history)
    assert runner.stop(job) is False  # already finished


def test_stopping_a_queued_job_takes_it_off_the_queue():
    calls = []

    def solve_and_record(s, options):
        calls.append(s.run.id)
        return solve(s, options)

    r = JobRunner(solve=solve_and_record)
    try:
        slow = r.submit(slow_stable())
        wait_until(lambda: r.progress(slow).status is JobStatus.RUNNING)
        queued = r.submit(tiny("never"))
        assert r.stop(queued) is True
        p = r.progress(queued)
        assert p.status is JobStatus.STOPPED and p.result is None and p.queue_position is None
        r.stop(slow)
        r.wait(slow, timeout=20)
        assert "never" not in calls
    finally:
        r.shutdown()


def test_a_failing_solve_is_reported_in_words_and_the_runner_keeps_going():
    def picky(s, options):
        if s.run.id == "bad":
            raise SnapshotError(["pins[0]: worker 'w1' cannot be pinned to job line 'j1'"])
        if s.run.id == "bug":
            raise ZeroDivisionError("division by zero")
        return solve(s, options)

    r = JobRunner(solve=picky)
    try:
        bad, bug, good = r.submit(tiny("bad")), r.submit(tiny("bug")), r.submit(tiny("good"))
        pb, pg, ok = r.wait(bad, 30), r.wait(bug, 30), r.wait(good, 30)
        assert pb.status is JobStatus.FAILED and "cannot be pinned" in pb.error and pb.result is None
        assert pg.status is JobStatus.FAILED and "internal error" in pg.error and "ZeroDivisionError" in pg.error
        assert ok.status is JobStatus.DONE and ok.result is not None
    finally:
        r.shutdown()


def test_unknown_job_and_submit_after_shutdown():
    r = JobRunner()
    with pytest.raises(KeyError):
        r.progress("job-404")
    r.shutdown()
    with pytest.raises(RuntimeError):
        r.submit(tiny())
