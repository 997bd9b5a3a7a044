"""``allocator explain``: the allocator-explain/1 format, statements files, exit codes, --run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from allocator.cli import app
from tests.helpers.cli import console
from tests.helpers.named_runs import DATA

SMALL = DATA / "valid" / "small_network.json"
DEMO = DATA / "valid" / "demo_40x16.json"
TOP_KEYS = ["format", "run_id", "worker_id", "job_line_id", "worker_rank", "objective", "method", "higher_choices"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_explain_one_worker_writes_the_spec_format(tmp_path: Path):
    out = tmp_path / "w01.json"
    res = run("explain", DEMO, "--worker", "w01", "--out", out)
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert list(d) == TOP_KEYS
    assert d["format"] == "allocator-explain/1" and d["run_id"] == "demo-2027-intake" and d["worker_id"] == "w01"
    assert d["higher_choices"]
    for h in d["higher_choices"]:
        assert {"job_line_id", "worker_rank", "reason", "price"} <= set(h)
        if h["reason"] == "price":
            assert {"price_worker_side", "price_preferencer_side", "moves", "proven"} <= set(h)
            for m in h["moves"]:
                assert list(m) == ["worker_id", "from", "to", "rank_before", "rank_after"]
    # Same input, same bytes.
    res2 = run("explain", DEMO, "--worker", "w01")
    assert res2.exit_code == 0 and json.loads(res2.stdout) == d


def test_unknown_worker_exits_2_and_writes_nothing(tmp_path: Path):
    out = tmp_path / "x.json"
    res = run("explain", SMALL, "--worker", "nobody", "--out", out)
    assert res.exit_code == 2 and "nobody" in res.output
    assert not out.exists()


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "--worker"),
        (["--worker", "w01", "--all"], "not both"),
        (["--all", "--format", "docx", "--out", "x.docx"], "--format must be one of"),
        (["--all", "--format", "pdf"], "needs --out"),
        (["--worker", "w01", "--format", "pdf"], "--format is for --all"),
    ],
)
def test_bad_flags_exit_2(args, words, tmp_path: Path):
    res = run("explain", SMALL, *args)
    assert res.exit_code == 2 and words in res.output


def test_neither_or_both_of_snapshot_and_run_exit_2():
    assert run("explain", "--worker", "w01").exit_code == 2
    res = run("explain", SMALL, "--run", "r1", "--worker", "w01")
    assert res.exit_code == 2 and "one of them" in res.output


def test_an_invalid_snapshot_exits_2(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "allocator-run/1", "workers": [], "job_lines": "x"}))
    res = run("explain", bad, "--worker", "w01")
    assert res.exit_code == 2 and "Invalid input" in res.output


def test_infeasible_run_exits_3_with_the_diagnosis(tmp_path: Path):
    data = json.loads(SMALL.read_text())
    for line in data["job_lines"]:
        line["max_n_workers"] = 0
    path = tmp_path / "inf.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "o.json"
    res = run("explain", path, "--worker", data["workers"][0]["id"], "--out", out)
    assert res.exit_code == 3 and "infeasible" in res.output
    assert not out.exists()


def test_all_workers_as_files(tmp_path: Path):
    from openpyxl import load_workbook

    for fmt in ("pdf", "zip", "xlsx", "json"):
        out = tmp_path / f"statements.{fmt}"
        res = run("explain", SMALL, "--all", "--format", fmt, "--out", out)
        assert res.exit_code == 0, res.output
        assert out.stat().st_size > 0
    assert (tmp_path / "statements.pdf").read_bytes().startswith(b"%PDF")
    assert load_workbook(tmp_path / "statements.xlsx")["Statements"].max_row >= 9
    d = json.loads((tmp_path / "statements.json").read_text())
    assert {r["worker_id"] for r in d["rows"]} == {w["id"] for w in json.loads(SMALL.read_text())["workers"]}
    res = run("explain", SMALL, "--all")
    assert res.exit_code == 0 and json.loads(res.stdout)["rows"]


# -- --run: the stored run, on the embedded PostgreSQL ---------------------------------------


@pytest.fixture
def cli(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    return console(db, tmp_path, monkeypatch, capsys)


@pytest.mark.db
def test_explain_a_stored_run(cli, tmp_path: Path):
    code, out, _ = cli("import", DEMO)
    assert code == 0
    run_id = out.strip()
    # Not solved yet: explained from a fresh solve.
    code, out, err = cli("explain", "--run", run_id, "--worker", "w01")
    assert code == 0, err
    fresh = json.loads(out)
    assert fresh["format"] == "allocator-explain/1" and fresh["worker_id"] == "w01"
    code, _, err = cli("solve-run", run_id)
    assert code == 0, err
    code, out, err = cli("explain", "--run", run_id, "--worker", "w01")
    assert code == 0, err
    stored = json.loads(out)
    assert stored["job_line_id"] == fresh["job_line_id"] and stored["higher_choices"] == fresh["higher_choices"]
    code, _, err = cli("explain", "--run", run_id, "--worker", "nobody")
    assert code == 2 and "nobody" in err
    code, _, err = cli("explain", "--run", "no-such-run", "--worker", "w01")
    assert code == 2
    out_file = tmp_path / "all.xlsx"
    code, _, err = cli("explain", "--run", run_id, "--all", "--format", "xlsx", "--out", out_file)
    assert code == 0 and out_file.stat().st_size > 0
