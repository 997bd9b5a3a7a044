"""``allocator run ...`` with the business rules: a line's site, a late worker's priority, and
a withdrawal that keeps a run with links and a previous allocation valid (said on stdout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import console, exported, imported

pytestmark = pytest.mark.db


def with_rules() -> dict:
    return {
        "format": "allocator-run/1",
        "run": {"id": "cli-rules", "name": "CLI rules"},
        "settings": {"fewest_moves": True},
        "workers": [{"id": "w1", "name": "A. Nguyen", "priority": 1}, {"id": "w2", "name": "B. Osei"}, {"id": "w3"}],
        "job_lines": [
            {"id": "j1", "name": "Line 1", "max_n_workers": 2, "site": "Orange"},
            {"id": "j2", "name": "Line 2", "max_n_workers": 2, "site": "Dubbo"},
            {"id": "j3", "name": "Line 3", "max_n_workers": 2},
        ],
        "linked_workers": [{"id": "couple-7", "worker_ids": ["w1", "w2"]}],
        "quotas": [{"id": "dubbo-min", "sites": ["Dubbo"], "min_workers": 1}],
        "previous_allocations": [{"worker_id": "w2", "job_line_id": "j2"}],
    }


@pytest.fixture
def cli(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    return console(db, tmp_path, monkeypatch, capsys)


@pytest.fixture
def run_id(cli, tmp_path: Path) -> str:
    return imported(cli, tmp_path, with_rules())


def test_import_then_export_keeps_every_rule(cli, run_id):
    snap = exported(cli, run_id)
    assert snap["linked_workers"] == [{"id": "couple-7", "worker_ids": ["w1", "w2"]}]
    assert snap["quotas"][0]["sites"] == ["Dubbo"] and snap["settings"]["fewest_moves"] is True
    assert snap["previous_allocations"] == [{"worker_id": "w2", "job_line_id": "j2"}]
    assert [j.get("site") for j in snap["job_lines"]] == ["Orange", "Dubbo", None]


def test_withdrawing_a_linked_worker_says_what_became_of_the_link_and_previous_place(cli, run_id):
    done = cli("run", "withdraw", run_id, "w2", "--reason", "Left")
    assert done.returncode == 0, done.stderr
    assert "Withdrew worker 'w2' (B. Osei) from the run." in done.stdout
    assert "Link 'couple-7' is removed: w1 was its only other worker." in done.stdout
    assert "Their previous allocation (job line 'j2') is dropped." in done.stdout
    snap = exported(cli, run_id)
    assert "linked_workers" not in snap and "previous_allocations" not in snap


def test_set_line_gives_a_site_and_makes_a_site_of_its_own(cli, run_id):
    done = cli("run", "set-line", run_id, "j3", "--site", "Bathurst", "--reason", "New hospital")
    assert done.returncode == 0, done.stderr
    assert "site none (a site of its own) → 'Bathurst'" in done.stdout
    assert [j.get("site") for j in exported(cli, run_id)["job_lines"]] == ["Orange", "Dubbo", "Bathurst"]

    done = cli("run", "set-line", run_id, "j3", "--own-site", "--reason", "Back")
    assert done.returncode == 0, done.stderr
    assert "site 'Bathurst' → none (a site of its own)" in done.stdout


def test_add_worker_with_a_priority(cli, run_id):
    done = cli("run", "add-worker", run_id, "w9", "--ranks", "j1", "--priority", "2", "--reason", "Late")
    assert done.returncode == 0, done.stderr
    assert "priority 2" in done.stdout
    assert {w["id"]: w.get("priority") for w in exported(cli, run_id)["workers"]}["w9"] == 2


@pytest.mark.parametrize(
    "args, words",
    [
        (("set-line", "{run}", "j2", "--site", "Orange", "--reason", "x"),
         "quota 'dubbo-min' counts site 'Dubbo'"),
        (("set-line", "{run}", "j1", "--site", "  ", "--reason", "x"), "a site is a non-empty name"),
        (("set-line", "{run}", "j1", "--site", "Dubbo", "--own-site", "--reason", "x"), "not both"),
        (("add-worker", "{run}", "w9", "--priority", "0", "--reason", "x"), "at least 1 (1 is placed first)"),
    ],
)
def test_bad_rule_changes_exit_2_naming_them_and_change_nothing(cli, run_id, args, words):
    before = exported(cli, run_id)
    done = cli("run", *[a.format(run=run_id) for a in args])
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr
    assert exported(cli, run_id) == before
