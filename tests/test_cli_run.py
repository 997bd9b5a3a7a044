"""``allocator run ...``: changing a stored run's data from the command line.

Each command runs through the console script's ``main`` in this process, in a temporary
folder, with ``ALLOCATOR_DATABASE_URL`` pointing at this module's own database.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.helpers.cli import console, exported, imported

pytestmark = pytest.mark.db


def tiny(run_id: str = "cli-run") -> dict:
    return {
        "format": "allocator-run/1",
        "run": {"id": run_id, "name": "CLI run"},
        "workers": [{"id": "w1", "name": "A. Nguyen"}, {"id": "w2", "name": "B. Osei"}, {"id": "w3"}],
        "job_lines": [
            {"id": "j1", "name": "Line 1", "max_n_workers": 2},
            {"id": "j2", "name": "Line 2", "max_n_workers": 2, "must_have_workers": True},
        ],
        "worker_preferences": [{"worker_id": "w1", "job_line_id": "j2", "rank": 1}],
    }


@pytest.fixture
def cli(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    return console(db, tmp_path, monkeypatch, capsys)


@pytest.fixture
def run_id(cli, tmp_path: Path) -> str:
    return imported(cli, tmp_path, tiny())


snapshot = exported


def changes(db: str, run_id: str) -> list[tuple]:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "select action, coalesce(worker_id, job_line_id), reason, changed_by from allocator_run_changes "
            "where run_id = %s order by id", (run_id,)).fetchall()


def test_import_records_the_files_name(db, run_id):
    with psycopg.connect(db) as conn:
        assert conn.execute("select source_file from allocator_py_runs where id = %s",
                            (run_id,)).fetchone() == ("intake.json",)


def test_withdraw_takes_the_worker_out_and_logs_who_and_why(cli, db, run_id):
    done = cli("run", "withdraw", run_id, "w2", "--reason", "Left the programme", "--by", "Dr Reyes")
    assert done.returncode == 0, done.stderr
    assert "Withdrew worker 'w2' (B. Osei)" in done.stdout
    assert "out of date" in done.stderr
    assert [w["id"] for w in snapshot(cli, run_id)["workers"]] == ["w1", "w3"]
    assert changes(db, run_id) == [("withdraw_worker", "w2", "Left the programme", "Dr Reyes")]


def test_the_planner_name_comes_from_the_environment(cli, db, run_id):
    done = cli("run", "withdraw", run_id, "w3", "--reason", "Deferred", env={"ALLOCATOR_PLANNER_NAME": "Pat Planner"})
    assert done.returncode == 0, done.stderr
    assert changes(db, run_id)[-1][3] == "Pat Planner"


def test_add_worker_with_tags_and_ranked_lines(cli, db, run_id):
    done = cli("run", "add-worker", run_id, "w9", "--name", "Late Starter", "--tags", "icu,rural",
               "--ranks", "j2,j1", "--reason", "Started in March")
    assert done.returncode == 0, done.stderr
    snap = snapshot(cli, run_id)
    assert {"id": "w9", "name": "Late Starter", "qualification_ids": ["icu", "rural"]} in snap["workers"]
    ranks = [(p["job_line_id"], p["rank"]) for p in snap["worker_preferences"] if p["worker_id"] == "w9"]
    assert sorted(ranks) == [("j1", 2.0), ("j2", 1.0)]
    assert changes(db, run_id)[-1][:3] == ("add_worker", "w9", "Started in March")


def test_set_line_changes_places_and_must_fill(cli, db, run_id):
    done = cli("run", "set-line", run_id, "j2", "--places", "4", "--no-must-fill", "--reason", "Funding")
    assert done.returncode == 0, done.stderr
    assert "places 2 → 4; must be filled yes → no" in done.stdout
    line = next(j for j in snapshot(cli, run_id)["job_lines"] if j["id"] == "j2")
    assert (line["max_n_workers"], line["must_have_workers"]) == (4, False)


def test_log_lists_every_change_with_who_and_why(cli, run_id):
    assert "not been changed" in cli("run", "log", run_id).stderr
    cli("run", "withdraw", run_id, "w1", "--reason", "Left", "--by", "Ana")
    cli("run", "set-line", run_id, "j1", "--must-fill", "--reason", "Rural quota", "--by", "Ben")
    out = cli("run", "log", run_id)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split("\t")[1:] == ["Ana", "Withdrew worker 'w1' (A. Nguyen) from the run.", "Reason: Left"]
    assert lines[1].split("\t")[1] == "Ben" and lines[1].endswith("Reason: Rural quota")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("withdraw", "{run}", "nobody", "--reason", "x"), "'nobody'"),
        (("withdraw", "{run}", "w1", "--reason", "  "), "reason is required"),
        (("withdraw", "{run}", "w1"), "--reason"),
        (("add-worker", "{run}", "w1", "--reason", "x"), "Worker 'w1' is already in run"),
        (("add-worker", "{run}", "w8", "--ranks", "j1,j7", "--reason", "x"), "job line 'j7'"),
        (("add-worker", "{run}", "w8", "--ranks", "j1=zero", "--reason", "x"), "must be a number"),
        (("set-line", "{run}", "j1", "--places", "-3", "--reason", "x"), "places must be a whole number, 0 or more (got -3)"),
        (("set-line", "{run}", "j1", "--reason", "x"), "say what to change"),
        (("set-line", "{run}", "j9", "--places", "1", "--reason", "x"), "'j9'"),
        # The Limits of run-snapshot.md hold for a change as for an import: beyond them the
        # run could no longer be loaded (or, for places past PostgreSQL's integers, exit 1).
        (("set-line", "{run}", "j1", "--places", "99999999999", "--reason", "x"), "places must be at most 1,000,000 (got 99,999,999,999)"),
        (("set-line", "{run}", "j1", "--places", "1000001", "--reason", "x"), "places must be at most 1,000,000"),
        (("add-worker", "{run}", "w8", "--ranks", "j1=1,j2=1e99", "--reason", "x"), "the rank of job line 'j2' must be at most 1,000,000,000"),
        (("add-worker", "{run}", "w8", "--name", "A\x07B", "--reason", "x"), "Worker 'w8': the name contains a control character (U+0007)"),
        (("add-worker", "{run}", "w8", "--tags", "icu,t\x1bt", "--reason", "x"), "Worker 'w8': the tag 't\\x1bt' contains a control character (escape)"),
        (("add-worker", "{run}", "w" * 201, "--reason", "x"), "is 201 characters long; an id has at most 200"),
        (("add-worker", "{run}", "w8", "--priority", "2000000", "--reason", "x"), "Worker 'w8': the priority must be at most 1,000,000, not 2,000,000"),
        # Bytes of the command line that are not UTF-8 (Python reads them as lone surrogates):
        # each stopped the change with "Unexpected error: UnicodeEncodeError ... a bug" (exit 1).
        (("withdraw", "{run}", "w1", "--reason", "left \udcff"), "The reason contains U+DCFF, half of a UTF-16 pair"),
        (("withdraw", "{run}", "w1", "--reason", "x", "--by", "Dr \udce9"), "The name of who makes the change contains U+DCE9"),
        (("withdraw", "{run}", "w\udcff", "--reason", "x"), "The worker id 'w\\udcff' contains U+DCFF"),
        (("set-line", "{run}", "j1", "--site", "Orang\udce9", "--reason", "x"), "Job line 'j1': the site contains U+DCE9"),
        (("add-worker", "{run}", "w\udcff", "--reason", "x"), "The late worker's id 'w\\udcff' contains U+DCFF"),
        (("log", "00000000-0000-0000-0000-000000000000"), "not found"),
        (("withdraw", "not-a-run", "w1", "--reason", "x"), "not a run id"),
    ],
)
def test_bad_input_exits_2_naming_it_and_changes_nothing(cli, db, run_id, args, words):
    before = snapshot(cli, run_id)
    done = cli("run", *(a.format(run=run_id) for a in args))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert words in done.stderr
    assert snapshot(cli, run_id) == before
    assert changes(db, run_id) == []


@pytest.mark.parametrize("first", ["allocator.cli", "allocator.cli.data", "allocator.cli.run", "allocator.cli.common"])
def test_the_run_commands_are_registered_whichever_module_is_imported_first(first):
    import subprocess
    import sys

    code = f"import {first}; from allocator.cli import app; print(sorted(g.name for g in app.registered_groups))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert "'run'" in proc.stdout and "'db'" in proc.stdout
