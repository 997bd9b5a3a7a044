"""Running ``allocator ARGS`` in the test's own process, as the console script would."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest


class Ran(NamedTuple):
    """What a command did: its exit code and what it printed (unpacks as a tuple too)."""

    returncode: int
    stdout: str
    stderr: str


def console(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Ran]:
    """``run(*args, env=None)``: ``allocator ARGS`` in ``tmp_path`` through the console script's
    ``main``, on the database ``db``, with no other allocator or Supabase setting in the
    environment (a process per command would cost a second each). No command may print a
    traceback."""
    from allocator.cli import main

    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("ALLOCATOR_", "SUPABASE_")):
            monkeypatch.delenv(name)

    def run(*args: object, env: dict[str, str] | None = None) -> Ran:
        with monkeypatch.context() as m:
            for k, v in {"ALLOCATOR_DATABASE_URL": db, **(env or {})}.items():
                m.setenv(k, v)
            capsys.readouterr()
            with pytest.raises(SystemExit) as exited:
                main([str(a) for a in args])
            out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        return Ran(exited.value.code, out, err)

    return run


def imported(cli: Callable[..., Ran], folder: Path, snapshot: dict) -> str:
    """``allocator import`` of ``snapshot`` (written to ``folder``); the new run's id."""
    import json

    path = folder / "intake.json"
    path.write_text(json.dumps(snapshot), encoding="utf-8")
    done = cli("import", str(path))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def exported(cli: Callable[..., Ran], run_id: str) -> dict:
    """``allocator export RUN``, parsed."""
    import json

    out = cli("export", run_id)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
