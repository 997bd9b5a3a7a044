"""The ``allocator`` command line: ``solve`` and ``demo``, in-process and through real processes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from allocator import cli
from allocator.cli import EXIT_INFEASIBLE, EXIT_INVALID, EXIT_NO_SOLUTION, EXIT_OK, app
from tests.helpers.named_runs import DATA, L, W

SMALL = DATA / "valid" / "small_network.json"
DEMO40 = DATA / "valid" / "demo_40x16.json"
EXIT_FOR_STATUS = {"optimal": 0, "feasible": 0, "infeasible": 3, "no_solution": 4}


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def infeasible_snapshot() -> dict:
    """Three workers, two single places."""
    return {"format": "allocator-run/1", "run": {"id": "too-small"}, "workers": W("w1", "w2", "w3"),
            "job_lines": L(("j1", 1), ("j2", 1))}


def unstable_snapshot() -> dict:
    """Feasible, but never stable: a fits only x; b prefers x, whose supervisor prefers b to a."""
    return {
        "format": "allocator-run/1",
        "run": {"id": "unstable"},
        "settings": {"stability": True},
        "workers": W("a", "b"),
        "job_lines": L(("x", 1, False, ["sup"]), ("y", 1)),
        "eligibility": [{"job_line_id": "y", "excluded_worker_ids": ["a"]}],
        "worker_preferences": [{"worker_id": "b", "job_line_id": "x", "rank": 1},
                               {"worker_id": "b", "job_line_id": "y", "rank": 2}],
        "preferencer_preferences": [{"preferencer_id": "sup", "worker_id": "b", "rank": 1},
                                    {"preferencer_id": "sup", "worker_id": "a", "rank": 2}],
    }


# -- help -----------------------------------------------------------------------------------


def test_help_documents_the_exit_codes():
    for args in ([], ["--help"], ["solve", "--help"]):
        res = run(*args)
        text = res.output
        assert "Exit codes" in text and "3 infeasible" in text and "4 no allocation" in text
    solve_help = run("solve", "--help").output
    for flag in ("--out", "--alpha", "--power", "--seed", "--time-limit", "--stable", "--no-stable", "--threads"):
        assert flag in solve_help


# -- solve: allocations ----------------------------------------------------------------------


def test_solve_prints_result_json_to_stdout_and_summary_to_stderr():
    res = run("solve", SMALL)
    assert res.exit_code == EXIT_OK, res.output
    d = json.loads(res.stdout)
    assert d["format"] == "allocator-result/1" and d["status"] == "optimal"
    assert [a["worker_id"] for a in d["allocations"]] == sorted(a["worker_id"] for a in d["allocations"])
    assert "optimal allocation of 8 workers (doctors) to 5 job lines" in res.stderr
    assert "{" not in res.stderr


def test_solve_writes_out_atomically(tmp_path):
    out = tmp_path / "result.json"
    out.write_text("old contents")
    res = run("solve", SMALL, "--out", out)
    assert res.exit_code == EXIT_OK
    assert res.stdout == ""
    assert json.loads(out.read_text())["status"] == "optimal"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left
    assert f"Result written to {out}" in res.stderr


@pytest.mark.parametrize("command", [("solve",), ("explain", "--all")])
def test_out_naming_the_input_file_itself_is_refused_and_the_input_kept(tmp_path, command):
    # The result replaced the planner's snapshot, which was then lost.
    snapshot = tmp_path / "run.json"
    snapshot.write_bytes(Path(SMALL).read_bytes())
    res = run(command[0], snapshot, *command[1:], "--out", tmp_path / "." / "run.json")
    assert res.exit_code == EXIT_INVALID
    assert "is the input file itself; give another file name" in res.stderr
    assert snapshot.read_bytes() == Path(SMALL).read_bytes()


def test_flags_override_the_snapshot_settings(tmp_path):
    out = tmp_path / "r.json"
    res = run("solve", SMALL, "--out", out, "--alpha", "0.5", "--power", "2", "--seed", "7",
              "--time-limit", "5", "--stable", "--threads", "1")
    assert res.exit_code == EXIT_OK, res.output
    s = json.loads(out.read_text())["settings"]
    assert s == {"preferencer_weight": 0.5, "preference_power": 2.0, "max_seconds": 5.0, "rng_seed": 7,
                 "allow_worker_preference_ties": True, "stability": True}
    assert json.loads(out.read_text())["metrics"]["blocking_pairs"] == 0


def test_no_stable_overrides_a_stable_snapshot(tmp_path):
    path = write(tmp_path, "unstable.json", unstable_snapshot())
    res = run("solve", path, "--no-stable")
    assert res.exit_code == EXIT_OK, res.output
    d = json.loads(res.stdout)
    assert d["settings"]["stability"] is False
    assert d["metrics"]["blocking_pairs"] == 1  # (b, x): counted even when stability is off


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alpha", "2"], "--alpha must be between 0 and 1"),  # above 1
        (["--alpha", "-0.1"], "--alpha must be between 0 and 1"),  # below 0
        (["--alpha", "nan"], "--alpha must be between 0 and 1"),  # not a number at all
        (["--power", "0"], "--power must be greater than 0"),  # power must be positive
        (["--power", "9"], "--power must be greater than 0 and at most 8"),  # too large to scale
        (["--seed", "-1"], "--seed must be a whole number from 0"),  # negative seed
        (["--time-limit", "0"], "--time-limit must be a number of seconds greater than 0"),
        (["--time-limit", "inf"], "--time-limit must be a number of seconds greater than 0"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--alpha", "abc"], "Invalid value for '--alpha'"),  # not a number: typer's own message
        (["--bogus"], "No such option"),  # unknown flag
        (["--out", "/no/such/folder/r.json"], "--out: the folder /no/such/folder does not exist"),
    ],
)
def test_bad_flag_values_exit_2_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "r.json"
    full = ["solve", SMALL, *args]
    if "--out" not in args:
        full += ["--out", out]
    res = run(*full)
    assert res.exit_code == EXIT_INVALID, res.output
    assert message in res.stderr
    assert res.stdout == ""
    assert not out.exists()


def test_all_bad_flags_are_reported_together(tmp_path):
    res = run("solve", SMALL, "--alpha", "2", "--power", "-1", "--out", tmp_path)
    assert res.exit_code == EXIT_INVALID
    assert "--alpha" in res.stderr and "--power" in res.stderr and "is a folder" in res.stderr


# -- solve: infeasible and out of time ---------------------------------------------------------


def test_infeasible_exits_3_with_the_diagnosis_on_stderr_and_in_the_json(tmp_path):
    path = write(tmp_path, "small.json", infeasible_snapshot())
    out = tmp_path / "r.json"
    res = run("solve", path, "--out", out)
    assert res.exit_code == EXIT_INFEASIBLE
    assert "infeasible" in res.stderr and "CAPACITY_BELOW_WORKERS" in res.stderr
    assert "3 workers (doctors) but its job lines have only 2 places" in res.stderr
    d = json.loads(out.read_text())
    assert d["status"] == "infeasible" and d["allocations"] == []
    assert [x["code"] for x in d["diagnosis"]] == ["CAPACITY_BELOW_WORKERS"]
    # Without --out the result JSON goes to stdout.
    res2 = run("solve", path)
    assert res2.exit_code == EXIT_INFEASIBLE
    assert json.loads(res2.stdout)["diagnosis"] == d["diagnosis"]


def test_stability_conflict_exits_3_and_names_the_blocking_pair(tmp_path):
    path = write(tmp_path, "unstable.json", unstable_snapshot())
    res = run("solve", path)
    assert res.exit_code == EXIT_INFEASIBLE, res.output
    (diag,) = json.loads(res.stdout)["diagnosis"]
    assert diag["code"] == "STABILITY_CONFLICT"
    assert diag["worker_ids"] == ["b"] and diag["job_line_ids"] == ["x"]


def test_no_allocation_within_the_time_limit_exits_4(tmp_path):
    # A 300 x 80 demo run in stable mode cannot be solved in a millisecond.
    demo = tmp_path / "demo300.json"
    assert run("demo", "--workers", "300", "--lines", "80", "--seed", "3", "--out", demo).exit_code == 0
    out = tmp_path / "r.json"
    res = run("solve", demo, "--stable", "--time-limit", "0.001", "--out", out)
    d = json.loads(out.read_text())
    assert d["status"] == "no_solution", res.stderr
    assert res.exit_code == EXIT_NO_SOLUTION
    assert d["allocations"] == [] and d["diagnosis"] == [] and d["objective"] is None
    assert "no allocation found within the time limit" in res.stderr


# -- determinism --------------------------------------------------------------------------------


def _allocations_bytes(res) -> str:
    assert res.exit_code == EXIT_OK, res.output
    return json.dumps(json.loads(res.stdout)["allocations"], separators=(",", ":"))


def _shuffled(data: dict, seed: int) -> dict:
    rng = random.Random(seed)
    out = json.loads(json.dumps(data))
    for value in out.values():
        if isinstance(value, list):
            rng.shuffle(value)
    for w in out["workers"]:
        rng.shuffle(w["qualification_ids"])
    return out


def test_same_snapshot_and_seed_give_byte_identical_allocations(tmp_path):
    first = _allocations_bytes(run("solve", DEMO40, "--seed", "99"))
    assert _allocations_bytes(run("solve", DEMO40, "--seed", "99")) == first
    shuffled = write(tmp_path, "shuffled.json", _shuffled(json.loads(DEMO40.read_text()), 5))
    assert _allocations_bytes(run("solve", shuffled, "--seed", "99")) == first
    # Another seed may choose another optimal allocation, never a worse one.
    a = json.loads(run("solve", DEMO40, "--seed", "99").stdout)
    b = json.loads(run("solve", DEMO40, "--seed", "100").stdout)
    assert b["objective"] == pytest.approx(a["objective"], rel=1e-7)


def test_byte_identical_across_processes(tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"r{k}.json"
        proc = subprocess.run([sys.executable, "-m", "allocator", "solve", str(DEMO40), "--out", str(out)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outs.append(json.loads(out.read_text())["allocations"])
    assert json.dumps(outs[0]) == json.dumps(outs[1])


# -- real processes -------------------------------------------------------------------------------


def test_console_script_rejects_bad_input_without_a_traceback(tmp_path):
    exe = Path(sys.executable).parent / "allocator"
    if not exe.exists():  # pragma: no cover - the editable install provides it
        pytest.skip("console script not installed")
    out = tmp_path / "r.json"
    proc = subprocess.run([str(exe), "solve", str(DATA / "invalid" / "unknown_key.json"), "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_INVALID
    assert "unknown field 'email'" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
    proc = subprocess.run([str(exe), "solve", str(SMALL), "--alpha", "2"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_INVALID and "--alpha must be between 0 and 1" in proc.stderr


def test_python_m_allocator_solves(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "allocator", "solve", str(SMALL)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == EXIT_OK, proc.stderr
    d = json.loads(proc.stdout)
    assert EXIT_FOR_STATUS[d["status"]] == proc.returncode == 0


# -- main(): errors never become tracebacks ---------------------------------------------------------


def test_unexpected_error_exits_1_with_a_short_message(monkeypatch, capsys):
    from allocator import engine

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine, "solve", broken)
    monkeypatch.delenv("ALLOCATOR_DEBUG", raising=False)
    with pytest.raises(SystemExit) as info:
        cli.main(["solve", str(SMALL)])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "Unexpected error: RuntimeError: disk on fire" in err and "Traceback" not in err
    monkeypatch.setenv("ALLOCATOR_DEBUG", "1")
    with pytest.raises(SystemExit):
        cli.main(["solve", str(SMALL)])
    assert "Traceback" in capsys.readouterr().err


def test_main_maps_exit_codes(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    with pytest.raises(SystemExit) as info:
        cli.main(["solve", str(DATA / "invalid" / "wrong_format.json")])
    assert info.value.code == EXIT_INVALID
    with pytest.raises(SystemExit) as info:
        cli.main(["solve", str(write(tmp_path, "inf.json", infeasible_snapshot()))])
    assert info.value.code == EXIT_INFEASIBLE
    with pytest.raises(SystemExit) as info:
        cli.main(["solve", str(SMALL), "--nope"])
    assert info.value.code == EXIT_INVALID
    assert "Traceback" not in capsys.readouterr().err


# -- demo -------------------------------------------------------------------------------------------


def test_demo_to_stdout_is_a_valid_snapshot_of_the_default_size():
    from allocator.snapshot import RunSnapshot

    res = run("demo")
    assert res.exit_code == EXIT_OK
    snap = RunSnapshot.parse(json.loads(res.stdout))
    assert len(snap.workers) == 140 and len(snap.job_lines) == 60
    assert "140 workers, 60 job lines" in res.stderr


def test_demo_is_deterministic_and_seeded(tmp_path):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    for path, seed in ((a, "5"), (b, "5"), (c, "6")):
        res = run("demo", "--workers", "30", "--lines", "12", "--seed", seed, "--out", path)
        assert res.exit_code == EXIT_OK and res.stdout == ""
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    d = json.loads(a.read_text())
    assert (len(d["workers"]), len(d["job_lines"])) == (30, 12)
    # and the demo solves
    assert run("solve", a).exit_code == EXIT_OK


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "--workers must be from 1 to 40,000 (got 0)"),
        (["--lines", "0"], "--lines must be from 1 to 40,000 (got 0)"),
        # Far past the largest tested size the generator took every byte of memory (killed).
        (["--workers", "100000000"], "--workers must be from 1 to 40,000 (got 100000000)"),
        (["--workers", "5", "--lines", "100000000"], "--lines must be from 1 to 40,000 (got 100000000)"),
        (["--seed", "-3"], "--seed must be a whole number of at least 0"),
        (["--out", "/no/such/folder/d.json"], "--out: the folder /no/such/folder does not exist"),
    ],
)
def test_demo_bad_flags(args, message):
    res = run("demo", *args)
    assert res.exit_code == EXIT_INVALID
    assert message in res.stderr and res.stdout == ""


def test_exit_codes_match_the_spec():
    assert (cli.EXIT_OK, cli.EXIT_INVALID, cli.EXIT_INFEASIBLE, cli.EXIT_NO_SOLUTION) == (0, 2, 3, 4)
    assert os.EX_OK == cli.EXIT_OK
