"""Bad input, every case: exit 2, the entry named, nothing written.

Every file under tests/data/bad/ (its README says what is wrong with each) goes through
``allocator solve`` and ``allocator import``; the files that a workbook can carry go through
``import`` as ``.xlsx`` too; and the inputs that cannot be stored as files (a named pipe,
``/dev/zero``, a folder, a file over the size limit) are made here. Each must give exit 2,
stderr naming the entry and the rule, no ``--out`` file and no new run in the database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from allocator.cli import EXIT_INVALID, app, main
from allocator.service import read_snapshot_file
from allocator.snapshot import RunSnapshot, SnapshotError
from allocator.store.postgres import PostgresStore
from allocator.workbook import snapshot_to_xlsx
from tests.helpers.named_runs import DATA

BAD = DATA / "bad"
REPO = Path(__file__).resolve().parents[1]

# file -> fragments stderr must hold (the entry, then the rule)
CASES: dict[str, list[str]] = {
    "alpha_string.json": ["settings: preferencer_weight", "must be a number, not the text '0.3'"],
    "capacity_1e30.json": ["job_lines[1] (id 'j2'): max_n_workers", "must be at most 1,000,000"],
    "capacity_2_31.json": ["job_lines[1] (id 'j2'): max_n_workers", "must be at most 1,000,000, not 2147483648"],
    "capacity_5000_digits.json": ["number of thousands of digits at line", "places are at most 1,000,000"],
    "capacity_boolean.json": ["job_lines[0] (id 'j1'): max_n_workers", "must be a whole number, not true"],
    "capacity_string.json": ["job_lines[0] (id 'j1'): max_n_workers", "must be a whole number, not the text '1'"],
    "field_and_reference_errors.json": [
        "worker_preferences[0] (worker 'w1', job line 'j1'): rank: must be a number, not the text 'first'",
        "workers: the id 'w1' is used by more than one worker",
        "pins[0]: worker 'w9' is not a worker of this run",
    ],
    "job_line_id_escape.json": ["job_lines[1] (id 'j\\x1b2')", "the id contains a control character (escape)"],
    "job_line_name_501_chars.json": ["job_lines[0] (id 'j1')", "the name is 501 characters long; a name has at most 500"],
    "job_line_name_escape.json": ["job_lines[1] (id 'j2')", "the name contains a control character (escape)"],
    "nested_100000_deep.json": ["nests lists and objects far deeper than a run snapshot"],
    "nested_one_level_too_deep.json": ["workers[1] (id 'w2').qualification_ids[1]", "nested deeper than a run snapshot has"],
    "not_utf8.json": ["not UTF-8 text"],
    "qualification_id_nul.json": ["workers[1] (id 'w2'): qualification_ids[0]", "contains a control character (NUL)"],
    "rank_1e10.json": ["worker_preferences[1] (worker 'w2', job line 'j2'): rank", "must be at most 1,000,000,000"],
    "rank_boolean.json": ["worker_preferences[0] (worker 'w1', job line 'j1'): rank", "must be a number, not true"],
    "rank_string.json": ["worker_preferences[0] (worker 'w1', job line 'j1'): rank", "must be a number, not the text '1'"],
    "repeated_key.json": ["workers[0]", "the key 'id' appears more than once"],
    "repeated_top_level_key.json": ["The snapshot", "the key 'workers' appears more than once"],
    "run_id_line_break.json": ["run: the id contains a control character (line break)"],
    "supervisor_rank_string.json": ["preferencer_preferences[0] (supervisor 'p1', worker 'w1'): rank", "must be a number, not the text '2'"],
    "weighting_1_5e308_twice.json": [
        "weightings[0] (worker 'w1', job line 'j1'): value: must be at most 1,000,000,000",
        "weightings[1] (worker 'w1', job line 'j1'): value: must be at most 1,000,000,000",
    ],
    "weighting_minus_2e9.json": ["weightings[0] (worker 'w1', job line 'j2'): value", "must be at least -1,000,000,000"],
    "weighting_string.json": ["weightings[0] (worker 'w1', job line 'j2'): value", "must be a number, not the text '-1'"],
    "worker_id_201_chars.json": ["workers[0] (id 'wwww", "the id is 201 characters long; an id has at most 200"],
    "worker_id_2700_chars.json": ["workers[1] (id 'wwww", "(2,700 characters)", "the id is 2,700 characters long"],
    "worker_id_nul.json": ["workers[1] (id 'w\\x00'): the id contains a control character (NUL)"],
    "worker_id_spaces.json": ["workers[0] (id ' w1 '): the id starts or ends with a space"],
    "worker_name_nul.json": ["workers[0] (id 'w1'): the name contains a control character (NUL)"],
    # Was read, then stopped the solve ("Unexpected error: UnicodeEncodeError") and the import
    # ("Database error: invalid input syntax for type json"), exit 1.
    "worker_name_lone_surrogate.json": ["workers[0] (id 'w1'): the name contains U+D800, half of a UTF-16 pair"],
    # business-rules.md: every new invalid input names its entry.
    "fewest_moves_string.json": ["settings: fewest_moves", "must be true or false, not the text 'yes'"],
    "link_empty.json": ["linked_workers[0] (id 'couple-1')", "names no workers; a link has 2 to 4 workers"],
    "link_of_five.json": ["linked_workers[0] (id 'team-1')", "a link has 2 to 4 workers, this one has 5"],
    "link_of_one.json": ["linked_workers[0] (id 'couple-1')", "a link has 2 to 4 workers, this one has 1"],
    "link_pins_on_two_sites.json": [
        "linked_workers[0] (id 'couple-1')", "pinned to different sites ('w1' to site 'Orange', 'w2' to site 'Dubbo')",
    ],
    "link_unknown_worker.json": ["linked_workers[0] (id 'couple-1')", "worker 'w9' is not a worker of this run"],
    "link_worker_twice.json": ["linked_workers[1] (id 'couple-2')", "worker 'w1' is already in link 'couple-1'"],
    "previous_unknown_job_line.json": ["previous_allocations[0]", "job line 'j9' is not a job line of this run"],
    "previous_unknown_worker.json": ["previous_allocations[0]", "worker 'w9' is not a worker of this run"],
    "previous_worker_twice.json": ["previous_allocations[1]", "worker 'w1' appears more than once"],
    "priority_1_5.json": ["workers[1] (id 'w2'): priority", "must be a whole number, not 1.5"],
    "priority_zero.json": ["workers[0] (id 'w1'): priority", "must be a whole number of at least 1 (1 is placed first), not 0"],
    "quota_min_above_max.json": ["quotas[0] (id 'rural-min')", "the minimum (3) is above the maximum (2)"],
    "quota_neither_sites_nor_lines.json": ["quotas[0] (id 'rural-min')", "names neither sites nor job lines"],
    "quota_sites_and_lines.json": ["quotas[0] (id 'rural-min')", "names both sites and job lines"],
    "quota_unknown_job_line.json": ["quotas[0] (id 'rural-min')", "job line 'j9' is not a job line of this run"],
    "quota_unknown_site.json": ["quotas[0] (id 'rural-min')", "site 'Bathurst' is not the site of any job line of this run"],
    "site_blank.json": ["job_lines[1] (id 'j2')", "the site is blank"],
}

# The same mistakes in a workbook, as `import` reads it: file -> fragments (sheet and row).
WORKBOOK_CASES: dict[str, list[str]] = {
    "capacity_2_31.json": ["Sheet 'job_lines', row 3 (id 'j2'): max_n_workers", "at most 1,000,000"],
    "capacity_1e30.json": ["Sheet 'job_lines', row 3 (id 'j2'): max_n_workers", "at most 1,000,000"],
    "capacity_boolean.json": ["Sheet 'job_lines', row 2", "must be a whole number"],
    "field_and_reference_errors.json": [
        "Sheet 'worker_preferences', row 2: the rank must be a number, not 'first'",
        "Sheet 'workers', row 4: the id 'w1' is already on row 2",
        "Sheet 'pins', row 2: worker 'w9' is not a worker of this run",
    ],
    "job_line_name_501_chars.json": ["Sheet 'job_lines', row 2 (id 'j1')", "a name has at most 500"],
    "rank_1e10.json": ["Sheet 'worker_preferences', row 3 (worker 'w2', job line 'j2'): rank", "at most 1,000,000,000"],
    "rank_boolean.json": ["Sheet 'worker_preferences', row 2", "the rank must be a number, not TRUE"],
    "weighting_1_5e308_twice.json": ["Sheet 'weightings', row 2", "Sheet 'weightings', row 3", "at most 1,000,000,000"],
    "weighting_minus_2e9.json": ["Sheet 'weightings', row 2", "at least -1,000,000,000"],
    "worker_id_201_chars.json": ["Sheet 'workers', row 2", "an id has at most 200"],
    "worker_id_2700_chars.json": ["Sheet 'workers', row 3", "the id is 2,700 characters long"],
    # business-rules.md in a workbook: the rules' sheets and columns, each row named.
    "link_of_five.json": ["Sheet 'linked_workers', row 2 (id 'team-1')", "a link has 2 to 4 workers, this one has 5"],
    "link_pins_on_two_sites.json": ["Sheet 'linked_workers', row 2 (id 'couple-1')", "pinned to different sites"],
    "link_worker_twice.json": ["Sheet 'linked_workers', row 3 (id 'couple-2')", "worker 'w1' is already in link 'couple-1'"],
    "previous_unknown_job_line.json": ["Sheet 'previous_allocations', row 2", "job line 'j9' is not a job line of this run"],
    "previous_worker_twice.json": ["Sheet 'previous_allocations', row 3", "the worker 'w1' is already on row 2"],
    "priority_zero.json": ["Sheet 'workers', row 2: priority must be a whole number (1 or more; 1 is placed first), not 0"],
    "quota_min_above_max.json": ["Sheet 'quotas', row 2 (id 'rural-min')", "the minimum (3) is above the maximum (2)"],
    "quota_sites_and_lines.json": ["Sheet 'quotas', row 2 (id 'rural-min')", "names both sites and job lines"],
    "quota_unknown_site.json": ["Sheet 'quotas', row 2 (id 'rural-min')", "site 'Bathurst' is not the site of any job line"],
}


def test_every_file_of_the_corpus_has_a_case_and_a_readme_line():
    files = sorted(p.name for p in BAD.glob("*.json"))
    assert files == sorted(CASES)
    readme = (BAD / "README.md").read_text(encoding="utf-8")
    assert [f for f in files if f"| {f} |" not in readme] == []


def _assert_refused(code: int, stderr: str, fragments: list[str]) -> None:
    assert code == EXIT_INVALID, stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


# --------------------------------------------------------------------------- allocator solve


@pytest.mark.parametrize("name", sorted(CASES))
def test_solve_refuses(tmp_path, name):
    out = tmp_path / "result.json"
    res = CliRunner().invoke(app, ["solve", str(BAD / name), "--out", str(out)])

    _assert_refused(res.exit_code, res.stderr, CASES[name])
    assert res.stdout == ""
    assert not out.exists()


# --------------------------------------------------------------------------- allocator import


def _count_runs(db: str) -> int:
    with psycopg.connect(db) as conn:
        return conn.execute("select count(*) from allocator_py_runs").fetchone()[0]


@pytest.fixture
def import_(db, tmp_path, monkeypatch, capsys):
    """``allocator import FILE`` through the console script's main, in this process, on the
    module's database; returns (exit code, stderr) after checking no run was added."""
    monkeypatch.chdir(tmp_path)
    for var in list(os.environ):
        if var.startswith(("ALLOCATOR_", "SUPABASE_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", db)

    def run(path: Path, *extra: str) -> tuple[int, str]:
        before = _count_runs(db)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(["import", str(path), *extra])
        out, err = capsys.readouterr()
        assert out == ""  # no run id: nothing was imported
        assert _count_runs(db) == before
        return exited.value.code, err

    return run


@pytest.mark.db
@pytest.mark.parametrize("name", sorted(CASES))
def test_import_refuses(import_, name):
    _assert_refused(*import_(BAD / name), CASES[name])


@pytest.mark.db
@pytest.mark.parametrize("name", sorted(WORKBOOK_CASES))
def test_import_refuses_the_workbook(import_, tmp_path, name):
    path = tmp_path / (Path(name).stem + ".xlsx")
    snapshot_to_xlsx(json.loads((BAD / name).read_text(encoding="utf-8")), path)

    _assert_refused(*import_(path), WORKBOOK_CASES[name])


@pytest.mark.db
def test_import_refuses_a_run_name_with_a_control_character(import_):
    code, err = import_(DATA / "valid" / "small_network.json", "--name", "2028\x00intake")
    _assert_refused(code, err, ["--name: the name contains a control character (NUL)"])


# --------------------------------------------------------------------------- not regular files


def _not_a_file(kind: str, suffix: str, tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / f"{kind}{suffix}"
    if kind == "pipe":
        os.mkfifo(path)
        return path, [str(path), "is a named pipe, not a regular file"]
    if kind == "zero":
        path.symlink_to("/dev/zero")
        return path, [str(path), "is a device, not a regular file"]
    path.mkdir()
    return path, [str(path), "is a folder"]


KINDS = [(kind, suffix) for kind in ("pipe", "zero", "folder") for suffix in (".json", ".xlsx")]


def _in_a_process(args: list[str], cwd: Path, db: str | None = None) -> subprocess.CompletedProcess[str]:
    # A process of its own with a timeout: reading a pipe or /dev/zero must not hang the suite.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOCATOR_", "SUPABASE_"))}
    env["PYTHONPATH"] = str(REPO)
    if db is not None:
        env["ALLOCATOR_DATABASE_URL"] = db
    return subprocess.run(
        [sys.executable, "-m", "allocator", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(("kind", "suffix"), [k for k in KINDS if k[1] == ".json"])
def test_solve_refuses_what_is_not_a_regular_file(tmp_path, kind, suffix):
    path, fragments = _not_a_file(kind, suffix, tmp_path)
    out = tmp_path / "result.json"

    proc = _in_a_process(["solve", str(path), "--out", str(out)], tmp_path)

    _assert_refused(proc.returncode, proc.stderr, fragments)
    assert not out.exists()


@pytest.mark.db
@pytest.mark.parametrize(("kind", "suffix"), KINDS)
def test_import_refuses_what_is_not_a_regular_file(db, tmp_path, kind, suffix):
    path, fragments = _not_a_file(kind, suffix, tmp_path)
    before = _count_runs(db)

    proc = _in_a_process(["import", str(path)], tmp_path, db)

    _assert_refused(proc.returncode, proc.stderr, fragments)
    assert proc.stdout == ""
    assert _count_runs(db) == before


# --------------------------------------------------------------------------- the size limit


def _valid_file(tmp_path: Path, suffix: str) -> Path:
    data = json.loads((DATA / "valid" / "small_network.json").read_text(encoding="utf-8"))
    path = tmp_path / f"run{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        snapshot_to_xlsx(data, path)
    return path


@pytest.mark.parametrize("suffix", [".json"])
def test_solve_refuses_a_file_over_the_size_limit(tmp_path, monkeypatch, suffix):
    path = _valid_file(tmp_path, suffix)
    limit_mb = path.stat().st_size / 2 / 1_000_000
    out = tmp_path / "result.json"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALLOCATOR_MAX_INPUT_MB", str(limit_mb))

    res = CliRunner().invoke(app, ["solve", str(path), "--out", str(out)])

    _assert_refused(res.exit_code, res.stderr, [str(path), "more than the", "ALLOCATOR_MAX_INPUT_MB"])
    assert not out.exists()
    # The same file is solved under the default limit: the size is what was refused.
    monkeypatch.delenv("ALLOCATOR_MAX_INPUT_MB")
    assert CliRunner().invoke(app, ["solve", str(path), "--out", str(out)]).exit_code == 0


@pytest.mark.db
@pytest.mark.parametrize("suffix", [".json", ".xlsx"])
def test_import_refuses_a_file_over_the_size_limit(import_, tmp_path, monkeypatch, suffix):
    path = _valid_file(tmp_path, suffix)
    monkeypatch.setenv("ALLOCATOR_MAX_INPUT_MB", str(path.stat().st_size / 2 / 1_000_000))

    _assert_refused(*import_(path), [str(path), "more than the", "ALLOCATOR_MAX_INPUT_MB"])


def test_a_bad_size_limit_setting_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALLOCATOR_MAX_INPUT_MB", "0")

    res = CliRunner().invoke(app, ["solve", str(DATA / "valid" / "small_network.json")])

    _assert_refused(res.exit_code, res.stderr, ["ALLOCATOR_MAX_INPUT_MB"])


# --------------------------------------------------------------------------- at the limits


def _at_the_limits() -> dict:
    """Every value at its limit: the limits are the bounds of valid input, not beyond them."""
    w, j = "w" * 199 + "1", "j" * 199 + "1"
    return {
        "format": "allocator-run/1",
        "run": {"id": "r" * 200, "name": "N\t" * 249 + "\r\n"},
        "workers": [{"id": w, "name": "é" * 500, "qualification_ids": ["q" * 200]}, {"id": "w2"}],
        "job_lines": [
            {"id": j, "name": "Line\none", "max_n_workers": 1_000_000, "preferencer_ids": ["p" * 200]},
            {"id": "j2", "max_n_workers": 1},
        ],
        "worker_preferences": [
            {"worker_id": w, "job_line_id": j, "rank": 1e9},
            {"worker_id": "w2", "job_line_id": j, "rank": 1},
        ],
        "preferencer_preferences": [{"preferencer_id": "p" * 200, "worker_id": w, "rank": 1_000_000_000}],
        "weightings": [
            {"worker_id": w, "job_line_id": j, "value": 1e9},
            {"worker_id": w, "job_line_id": j, "value": 1e9},
            {"worker_id": "w2", "job_line_id": None, "value": -1e9},
        ],
    }


@pytest.mark.parametrize("power", [1.0, 8.0])
def test_a_run_at_every_limit_is_solved(tmp_path, power):
    path = tmp_path / "limits.json"
    path.write_text(json.dumps({**_at_the_limits(), "settings": {"preference_power": power}}), encoding="utf-8")
    out = tmp_path / "result.json"

    res = CliRunner().invoke(app, ["solve", str(path), "--out", str(out)])

    assert res.exit_code == 0, res.stderr
    assert len(json.loads(out.read_text(encoding="utf-8"))["allocations"]) == 2


@pytest.mark.db
def test_a_run_at_every_limit_is_imported(db, tmp_path, monkeypatch, capsys):
    path = tmp_path / "limits.json"
    path.write_text(json.dumps(_at_the_limits()), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for var in list(os.environ):
        if var.startswith(("ALLOCATOR_", "SUPABASE_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", db)

    with pytest.raises(SystemExit) as exited:
        main(["import", str(path)])
    out, err = capsys.readouterr()

    assert exited.value.code == 0, err
    with PostgresStore(db) as store:
        assert store.load_run(out.strip()).canonical()["job_lines"] == RunSnapshot.parse(_at_the_limits()).canonical()["job_lines"]


# --------------------------------------------------------------------------- the dashboard's upload


@pytest.mark.parametrize("suffix", [".json", ".xlsx"])
def test_the_uploads_reader_names_the_upload_not_its_temporary_file(tmp_path, monkeypatch, suffix):
    # pages/runs.py saves an upload to a temporary file and reads it with this function.
    path = _valid_file(tmp_path, suffix)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALLOCATOR_MAX_INPUT_MB", str(path.stat().st_size / 2 / 1_000_000))

    with pytest.raises(SnapshotError) as refused:
        read_snapshot_file(path, label=f"intake{suffix}")

    (message,) = refused.value.messages
    assert message.startswith(f"intake{suffix} is ") and "more than the" in message
    assert str(tmp_path) not in message


def test_the_uploads_reader_refuses_repeated_keys():
    with pytest.raises(SnapshotError) as refused:
        read_snapshot_file(BAD / "repeated_key.json", label="intake.json")
    assert refused.value.messages == [
        "workers[0] (id 'w3'): the key 'id' appears more than once in one object; "
        "keep one (a JSON reader would silently keep the last)"
    ]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_json_in_any_encoding_json_reads_is_still_read(tmp_path, encoding):
    # The careful reader decodes as json.loads did before it: only bytes that are no text are refused.
    path = tmp_path / "run.json"
    path.write_bytes((DATA / "valid" / "small_network.json").read_text(encoding="utf-8").encode(encoding))

    assert read_snapshot_file(path) == read_snapshot_file(DATA / "valid" / "small_network.json")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # A snapshot wrapped in a list: each worker's tags were reported as nested too deep.
        ("[" + (DATA / "valid" / "small_network.json").read_text(encoding="utf-8") + "]", "a list"),
        ("null", "null"),
        ('"allocator-run/1"', "the text 'allocator-run/1'"),
    ],
)
def test_a_file_that_is_no_json_object_is_called_what_it_is(text, kind):
    with pytest.raises(SnapshotError) as refused:
        RunSnapshot.from_json(text)
    assert refused.value.messages == [
        f"The snapshot must be a JSON object with 'format', 'workers' and 'job_lines', not {kind}."
    ]



def test_a_workbook_given_where_a_json_snapshot_belongs_is_called_a_workbook(tmp_path):
    # `allocator solve run.xlsx` said "The file is not UTF-8 text (byte 11 cannot be read)".
    path = tmp_path / "run.xlsx"
    snapshot_to_xlsx(RunSnapshot.from_json((DATA / "valid" / "small_network.json").read_text()), path)
    res = CliRunner().invoke(app, ["solve", str(path)])
    assert res.exit_code == EXIT_INVALID
    assert "The file is an Excel workbook (or another zip file), not a JSON snapshot. `allocator import` reads workbooks named .xlsx" in res.stderr
