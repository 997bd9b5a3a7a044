"""The command line as a package: explicit registration, and no way past the service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from allocator.cli import EXIT_INVALID, app

ROOT = Path(__file__).resolve().parents[1]


def test_every_group_registers_its_commands():
    commands = {c.name for c in app.registered_commands}
    groups = {g.name for g in app.registered_groups}
    assert commands == {
        "solve", "demo", "explain", "import", "export", "template", "solve-run", "process-pending", "api",
    }
    assert groups == {"db", "run"}


def test_importing_the_command_line_loads_neither_the_store_nor_the_database():
    code = (
        "import sys, allocator.cli; "
        "print(sorted(m for m in sys.modules if m.startswith(('allocator.store', 'allocator.db'))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_invalid_configuration_is_exit_2_naming_the_setting(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env or secrets.toml of the project's
    monkeypatch.setenv("ALLOCATOR_SOLVER_THREADS", "0")
    done = CliRunner().invoke(app, ["db", "url"])
    assert done.exit_code == EXIT_INVALID
    assert "Invalid configuration" in done.output
    assert "SOLVER_THREADS" in done.output
