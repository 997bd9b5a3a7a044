"""The database commands of ``allocator``, through the console script's ``main``.

Each command runs in a temporary folder (so no developer's ``.env`` is read) with
``ALLOCATOR_DATABASE_URL`` pointing at a database of this module on the session's embedded
PostgreSQL. Most run in this process; the ones whose point is what a terminal shows (only
the id on stdout, a refusal to start) run as ``python -m allocator`` in a process of their own.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.helpers.cli import console

pytestmark = pytest.mark.db

REPO = Path(__file__).resolve().parents[1]


def tiny(run_id: str = "cli", **extra) -> dict:
    return {
        "format": "allocator-run/1",
        "run": {"id": run_id, "name": "CLI run"},
        "settings": {"max_seconds": 10, "preferencer_weight": 0.25},
        "workers": [{"id": "w1", "name": "A. Nguyen"}, {"id": "w2", "qualification_ids": ["rural"]}],
        "job_lines": [
            {"id": "j1", "name": "Line 1", "max_n_workers": 1, "preferencer_ids": ["p1"]},
            {"id": "j2", "name": "Line 2", "max_n_workers": 1, "must_have_workers": True},
        ],
        "worker_preferences": [{"worker_id": "w1", "job_line_id": "j2", "rank": 1}],
        "preferencer_preferences": [{"preferencer_id": "p1", "worker_id": "w2", "rank": 1}],
        "eligibility": [{"job_line_id": "j2", "excluded_qualification_ids": ["rural"]}],
        "weightings": [{"worker_id": "w1", "job_line_id": None, "value": -1.5}],
        "forbids": [{"worker_id": "w2", "job_line_id": "j2"}],
        **extra,
    }


@pytest.fixture
def cli(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    return console(db, tmp_path, monkeypatch, capsys)


def in_a_process(db: str, cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m allocator ARGS`` as a planner would: its own process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOCATOR_", "SUPABASE_"))}
    full = {**base, "ALLOCATOR_DATABASE_URL": db, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "allocator", *args],
        cwd=cwd, env=full, capture_output=True, text=True, timeout=120,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def run_status(db: str, run_id: str) -> str | None:
    with psycopg.connect(db) as conn:
        row = conn.execute("select status from allocator_py_runs where id = %s", (run_id,)).fetchone()
    return row[0] if row else None


def count_runs(db: str) -> int:
    with psycopg.connect(db) as conn:
        return conn.execute("select count(*) from allocator_py_runs").fetchone()[0]


# --------------------------------------------------------------------------- import / export


def test_import_prints_only_the_new_run_id(db, tmp_path):
    proc = in_a_process(db, tmp_path, "import", str(write(tmp_path, "run.json", tiny())))

    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()
    assert proc.stdout == run_id + "\n"
    assert str(uuid.UUID(run_id)) == run_id
    assert run_status(db, run_id) == "pending"


def test_a_file_whose_name_is_not_utf8_is_imported_and_recorded_as_far_as_it_reads(cli, db, tmp_path):
    # Linux file names are bytes: b"caf\xe9.json" stopped the import with an encoding error (exit 1).
    path = write(tmp_path, "caf\udce9.json", tiny())
    proc = cli("import", path)
    assert proc.returncode == 0, proc.stderr
    with psycopg.connect(db) as conn:
        (source,) = conn.execute("select source_file from allocator_py_runs where id = %s", (proc.stdout.strip(),)).fetchone()
    assert source == "caf\ufffd.json"


def test_export_import_export_is_identical(cli, tmp_path):
    first = cli("import", str(write(tmp_path, "run.json", tiny("round")))).stdout.strip()
    exported = cli("export", first)
    assert exported.returncode == 0, exported.stderr
    (tmp_path / "exported.json").write_text(exported.stdout, encoding="utf-8")

    second = cli("import", "exported.json").stdout.strip()
    again = cli("export", second, "--out", "again.json")

    assert again.returncode == 0, again.stderr
    assert second != first
    assert (tmp_path / "again.json").read_text(encoding="utf-8") == exported.stdout
    assert json.loads(exported.stdout)["run"] == {"id": "round", "name": "CLI run"}


def test_workbook_export_imports_back_unchanged(cli, tmp_path):
    first = cli("import", str(write(tmp_path, "run.json", tiny("sheet")))).stdout.strip()
    assert cli("export", first, "--out", "run.xlsx").returncode == 0
    second = cli("import", "run.xlsx")
    assert second.returncode == 0, second.stderr

    assert cli("export", second.stdout.strip()).stdout == cli("export", first).stdout


def test_template_is_a_workbook_that_names_what_is_missing(cli, db, tmp_path):
    made = cli("template", "--out", "run.xlsx")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "run.xlsx").read_bytes()[:2] == b"PK"  # an xlsx is a zip

    before = count_runs(db)
    empty = cli("import", "run.xlsx")
    assert empty.returncode == 2
    assert "workers" in empty.stderr and "job_lines" in empty.stderr
    assert empty.stdout == ""
    assert count_runs(db) == before


@pytest.mark.parametrize(
    ("args", "says"),
    [
        # a dangling worker id: the message names the entry
        (["import", "bad.json"], "worker_preferences[0]: worker 'w9' is not a worker of this run"),
        (["import", "missing.json"], "File not found"),  # no such file
        (["import", "run.csv"], "cannot read a .csv file"),  # a file type we do not read
        (["import", "run"], "run: cannot read a file without an extension"),  # was "a extensionless file"
        (["import", "."], ". is a folder, not a file"),  # was ": cannot read a extensionless file"
        # was exit 1, "Database error: invalid input syntax for type uuid"
        (["import", "good.json", "--organisation", "nope"], "'nope' is not an organisation id"),
        (["export", str(uuid.UUID(int=99))], "was not found"),  # an unknown run
        (["export", "not-an-id"], "'not-an-id' is not a run"),  # a malformed run id
        (["solve-run", str(uuid.UUID(int=99))], "There is no run"),  # an unknown run
        (["export", "x", "--format", "xlsx"], "--format xlsx needs --out"),  # a workbook to a terminal
        (["export", "x", "--format", "csv"], "--format must be json or xlsx"),  # unknown format
        (["process-pending", "--lease", "0"], "--lease must be"),  # a lease of no time
        # a lease past PostgreSQL's timestamps: "Database error: interval out of range" (exit 1)
        (["process-pending", "--lease", "1e300"], "--lease must be a number of seconds greater than 0 and at most 604,800"),
        # a name whose bytes are not UTF-8: exit 5 ("not waiting"), or an encoding error
        (["solve-run", str(uuid.UUID(int=99)), "--worker", "n\udcff"], "--worker 'n\\udcff' contains U+DCFF"),
        (["process-pending", "--worker", "n\udcff"], "--worker 'n\\udcff' contains U+DCFF"),
        (["template", "--out", "run.txt"], "must name an .xlsx file"),  # wrong extension
    ],
)
def test_bad_input_is_exit_2_with_a_message(cli, db, tmp_path, args, says):
    write(tmp_path, "bad.json", tiny(worker_preferences=[{"worker_id": "w9", "job_line_id": "j1", "rank": 1}]))
    (tmp_path / "run.csv").write_text("id\n", encoding="utf-8")
    (tmp_path / "run").write_text("id\n", encoding="utf-8")
    write(tmp_path, "good.json", tiny())
    before = count_runs(db)

    proc = cli(*args)

    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert says in proc.stderr
    assert proc.stdout == ""
    assert count_runs(db) == before


def test_help_documents_the_exit_codes(cli):
    for command in ("import", "export", "solve-run", "process-pending"):
        text = cli(command, "--help").stdout
        assert "Exit codes" in text and "5 the run is not waiting" in " ".join(text.split())


# --------------------------------------------------------------------------- solving


def test_solve_run_exit_codes(cli, db, tmp_path):
    ok = cli("import", str(write(tmp_path, "ok.json", tiny("ok")))).stdout.strip()
    # Line j2 must be filled; w2 is excluded from it (tag) and forbidden; w1 is pinned to j1.
    no_way = cli("import", str(write(tmp_path, "no.json", tiny("no", pins=[{"worker_id": "w1", "job_line_id": "j1"}])))).stdout.strip()

    solved = cli("solve-run", ok)
    assert solved.returncode == 0, solved.stderr
    assert "complete" in solved.stdout and run_status(db, ok) == "complete"

    again = cli("solve-run", ok)
    assert again.returncode == 5 and "already complete" in again.stderr

    infeasible = cli("solve-run", no_way)
    assert infeasible.returncode == 3, infeasible.stderr
    assert "j2" in infeasible.stdout and run_status(db, no_way) == "failed"


def test_process_pending_reports_a_line_per_run(cli, db, tmp_path):
    cli("process-pending")  # drain what other tests left
    ids = [cli("import", str(write(tmp_path, f"r{i}.json", tiny(f"pp{i}")))).stdout.strip() for i in range(2)]

    proc = cli("process-pending", "--worker", "cli-test", "--lease", "60")

    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ids
    assert all("complete" in line for line in lines)
    assert "Processed 2 run(s): 2 complete." in proc.stderr
    assert cli("process-pending", "--once").stdout == ""


# --------------------------------------------------------------------------- db and api


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://alice:s3cret@db.example.org:5432/app?sslmode=require",
         "postgresql://alice:****@db.example.org:5432/app?sslmode=require"),
        # the password as a parameter (psycopg accepts both)
        ("postgresql://alice@db.example.org/app?password=s3cret&sslmode=require",
         "postgresql://alice@db.example.org/app?password=****&sslmode=require"),
        ("postgresql:///app?host=/tmp/sock", "postgresql:///app?host=/tmp/sock"),  # no password
    ],
)
def test_db_url_masks_the_password_unless_asked(cli, url, masked):
    shown = cli("db", "url", env={"ALLOCATOR_DATABASE_URL": url})
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == masked + "\n"
    assert "s3cret" not in shown.stdout + shown.stderr

    revealed = cli("db", "url", "--show-password", env={"ALLOCATOR_DATABASE_URL": url})
    assert revealed.stdout == url + "\n"


def test_db_migrate_on_a_migrated_database_is_up_to_date(cli):
    proc = cli("db", "migrate")
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stderr


def test_db_migrate_of_an_unreachable_database_is_a_message(cli, tmp_path):
    proc = cli("db", "migrate", env={"ALLOCATOR_DATABASE_URL": f"postgresql:///nope?host={tmp_path}&connect_timeout=2"})
    assert proc.returncode == 1
    assert proc.stderr.startswith("Database error:")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        # Each was tried for 30 s, then "Cannot reach the database: pool initialization incomplete".
        ({"ALLOCATOR_DATABASE_URL": "notaurl"},
         "ALLOCATOR_DATABASE_URL: is not a PostgreSQL connection string; give one like postgresql://"),
        ({"ALLOCATOR_DATABASE_URL": "postgresql://u:s3cret@h/db?colour=red"},
         'ALLOCATOR_DATABASE_URL: is not a PostgreSQL connection string (invalid URI query parameter: "colour")'),
        # Each was "Unexpected error: ... This is a bug in the allocator" (exit 1).
        ({"ALLOCATOR_DATABASE_URL": "", "SUPABASE_URL": "supabase.co", "SUPABASE_KEY": "k"},
         "SUPABASE_URL: is not a web address; give the project's URL, like https://abcd.supabase.co"),
        # Was read as "use the embedded database": a publish landed on this machine.
        ({"ALLOCATOR_DATABASE_URL": "", "SUPABASE_URL": "https://abcd.supabase.co", "SUPABASE_KEY": ""},
         "SUPABASE_URL is set but SUPABASE_KEY is not: set both to use the Supabase project"),
        ({"ALLOCATOR_DATABASE_URL": "", "ALLOCATOR_DATA_DIR": "{tmp}/run.csv"}, "ALLOCATOR_DATA_DIR: {tmp}/run.csv is a file, not a folder"),
        ({"ALLOCATOR_DATABASE_URL": "", "ALLOCATOR_DATA_DIR": "{tmp}/run.csv/db"},
         "ALLOCATOR_DATA_DIR: cannot hold the embedded database at {tmp}/run.csv/db: Not a directory"),
    ],
)
def test_a_setting_that_cannot_work_is_invalid_configuration(cli, tmp_path, env, says):
    (tmp_path / "run.csv").write_text("id\n", encoding="utf-8")
    proc = cli("run", "log", str(uuid.UUID(int=99)), env={k: v.format(tmp=tmp_path) for k, v in env.items()})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == "Invalid configuration (environment, .env or .streamlit/secrets.toml):", proc.stderr
    assert lines[1].startswith(f"  - {says.format(tmp=tmp_path)}") and len(lines) == 2, proc.stderr
    assert "s3cret" not in proc.stderr


def test_api_refuses_to_start_without_a_key(db, tmp_path):
    proc = in_a_process(db, tmp_path, "api", "--port", "1")
    assert proc.returncode == 2
    assert "ALLOCATOR_API_KEY" in proc.stderr and "Refusing to start" in proc.stderr


@pytest.mark.parametrize("key", ["", "   "])  # empty, blank: the same as unset
def test_api_refuses_a_blank_key(cli, key):
    proc = cli("api", "--port", "1", env={"ALLOCATOR_API_KEY": key})
    assert proc.returncode == 2
    assert "Refusing to start" in proc.stderr


def test_api_refuses_a_port_in_use_and_a_host_it_cannot_listen_on(cli):
    # uvicorn ended with its own exit code 3, which the command line's codes read as "infeasible".
    key = {"ALLOCATOR_API_KEY": "k" * 20}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli("api", "--port", str(port), env=key)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"Cannot listen on 127.0.0.1:{port}: Address already in use.")
    proc = cli("api", "--host", "no such host!", "--port", "8000", env=key)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("--host 'no such host!' is not an address this machine can listen on")


def test_api_serves_health_with_a_key(db, tmp_path):
    """`allocator api` with a key really listens: /health answers, POSTs want the key."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOCATOR_", "SUPABASE_"))}
    env = {**base, "ALLOCATOR_DATABASE_URL": db, "ALLOCATOR_API_KEY": "k" * 32, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "allocator", "api", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "the API did not start within 30 s"
                time.sleep(0.1)
        assert health.status_code == 200 and health.json()["database"]["reachable"] is True
        assert httpx.post(f"http://127.0.0.1:{port}/runs/process-pending", timeout=5).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)
