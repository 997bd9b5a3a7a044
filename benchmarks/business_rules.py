"""Business-rule benchmarks (issue 12): the three target rows, each solve in a child process.

Run by hand (never in the test suite)::

    .venv/bin/python benchmarks/business_rules.py            # prints the table
    .venv/bin/python benchmarks/business_rules.py --write    # and appends it to RESULTS.md
    .venv/bin/python benchmarks/business_rules.py --only rules-1500x300

The rows (runs from ``benchmarks/instances.generate_instance`` with its business-rule
options; rules read off a valid allocation, so every run has an allocation meeting them):

* **rules-1500x300**: 1,500 workers x 300 job lines, 40 links, 3 quotas, 3 priority tiers.
  Target: proven optimal within 5 s, whole solve (parse, build, solve, verify, metrics:
  ``allocator.engine.solve``). Beside it, HiGHS on the same model
  (``tests/helpers/highs_reference.py``: one MILP per level, each optimum fixed).
* **tiers-moves-1500x300**: the same size with 3 tiers and fewest moves from a previous
  allocation only (no links, no quotas), against the plain run of the same seed. Target:
  within 2 x the plain run's whole solve.
* **stable-links-200x60**: 200 x 60 in stable mode with 10 links (read off a deferred-
  acceptance stable allocation, so a stable allocation meeting them exists). Target: proven
  optimal, or its gap reported, within 30 s (``max_seconds`` 30).

Every measurement runs in a fresh child process (its own imports and peak memory). Beside the
wall clock, the table gives the child's CPU seconds (every thread): on a shared machine the wall
clock grows with the load, the CPU time much less (our solve runs one thread at a time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

#: row -> (workers, lines, seed, generate_instance options, max_seconds)
ROWS: dict[str, tuple[int, int, int, dict, float]] = {
    "rules-1500x300": (1_500, 300, 2, {"links": 40, "quotas": 3, "tiers": 3}, 60.0),
    **{f"rules-1500x300-seed{s}": (1_500, 300, s, {"links": 40, "quotas": 3, "tiers": 3}, 60.0) for s in range(3, 8)},
    "tiers-moves-1500x300": (1_500, 300, 2, {"tiers": 3, "fewest_moves": True}, 60.0),
    "plain-1500x300": (1_500, 300, 2, {}, 60.0),
    "stable-links-200x60": (200, 60, 3, {"stability": True, "links": 10}, 30.0),
}
#: row -> methods measured on it
METHODS: dict[str, tuple[str, ...]] = {
    "rules-1500x300": ("ours", "highs"),
    **{f"rules-1500x300-seed{s}": ("ours",) for s in range(3, 8)},
    "tiers-moves-1500x300": ("ours",),
    "plain-1500x300": ("ours",),
    "stable-links-200x60": ("ours",),
}
TARGETS = {
    "rules-1500x300": "proven optimal within 5 s whole solve",
    **{f"rules-1500x300-seed{s}": "(the same target on other seeds)" for s in range(3, 8)},
    "tiers-moves-1500x300": "within 2 x the plain run's time",
    "plain-1500x300": "(the reference for the row above)",
    "stable-links-200x60": "proven optimal or gap reported within 30 s",
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(row: str, method: str, *, threads: int, highs_cap: float) -> dict:
    """One measurement in this process (the parent runs it in a child)."""
    from instances import generate_instance

    from allocator.problem import ProblemData
    from allocator.snapshot import RunSnapshot

    m, n, seed, rules, max_seconds = ROWS[row]
    data = generate_instance(m, n, seed, **rules)
    out: dict = {"row": row, "method": method, "workers": m, "lines": n}
    out["links"] = len(data.get("linked_workers", []))
    out["quotas"] = len(data.get("quotas", []))
    out["tiers"] = len({w.get("priority") for w in data["workers"]})
    out["previous"] = len(data.get("previous_allocations", []))
    t0 = time.perf_counter()
    c0 = time.process_time()
    if method == "ours":
        from allocator.engine import solve
        from allocator.solvers import SolveOptions

        run = RunSnapshot.parse(data).with_settings(max_seconds=max_seconds)
        try:
            result = solve(run, SolveOptions(threads=threads))
        except Exception as exc:  # noqa: BLE001 - a benchmark records the failure and goes on
            out.update(status="error", error=f"{type(exc).__name__}: {exc}"[:500])
            out["total_s"] = time.perf_counter() - t0
            return out
        out["total_s"] = time.perf_counter() - t0
        out["status"] = str(result.status)
        out["objective"] = result.objective
        out["bound"] = result.best_bound
        out["backend"] = result.backend
        if result.assignment is not None and result.problem is not None:
            out["levels"] = result.problem.objective_levels(result.assignment)
    elif method == "highs":
        from tests.helpers.highs_reference import solve_reference

        problem = ProblemData.from_snapshot(RunSnapshot.parse(data))
        ref = solve_reference(problem, time_limit=highs_cap)
        out["total_s"] = time.perf_counter() - t0
        out.update(
            status=ref.status,
            levels=ref.levels,
            level_names=ref.level_names,
            variables=ref.n_variables,
            constraints=ref.n_constraints,
        )
        if ref.status != "optimal":
            # Where it stopped: the level cut off, its best value and HiGHS's bound.
            out["cut"] = {
                "level": ref.level_names[len(ref.levels)]
                if len(ref.levels) < len(ref.level_names)
                else None,
                "incumbent": ref.cut_incumbent,
                "bound": ref.cut_bound,
            }
        if ref.status == "optimal":
            out["objective"] = problem.objective(ref.assignment)
    else:
        raise ValueError(method)
    # CPU seconds of the whole process (every thread): beside the wall clock, it shows what a
    # loaded machine added (CP-SAT here runs one worker, HiGHS and the flows one thread).
    out["cpu_s"] = time.process_time() - c0
    out["peak_rss_mb"] = _rss_mb()
    return out


def run_child(row: str, method: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        row,
        method,
        "--threads",
        str(args.threads),
        "--highs-cap",
        str(args.highs_cap),
    ]
    cap = max(ROWS[row][4], args.highs_cap) * 4 + 600
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return {
            "row": row,
            "method": method,
            "status": "error",
            "error": f"no answer within {cap:.0f} s",
        }
    if done.returncode != 0:
        return {"row": row, "method": method, "status": "error", "error": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt(x, spec=".2f", none="-") -> str:
    return none if x is None else format(x, spec)


def _gap(r: dict) -> str:
    obj, bound = r.get("objective"), r.get("bound")
    if r.get("status") == "optimal" or obj is None or bound is None:
        return "-"
    return f"{100 * (obj - bound) / max(abs(obj), 1e-12):.2f} %"


def _proven(r: dict) -> bool:
    return r.get("status") == "optimal" and bool(r.get("total_s"))


def table(rows: list[dict]) -> str:
    by = {(r["row"], r["method"]): r for r in rows}
    head = (
        "| run | rules | method | status | whole solve s | CPU s | peak RSS MB | levels (best first) | gap | target | vs |\n"
        "|---|---|---|---|---:|---:|---:|---|---:|---|---:|"
    )
    out = [head]
    for r in rows:
        tiers = r.get("tiers", 1)
        rules = f"{r.get('links', 0)} links, {r.get('quotas', 0)} quotas, {tiers} tier{'s' if tiers != 1 else ''}"
        if r.get("previous"):
            rules += f", fewest moves ({r['previous']:,} previous)"
        if "stable" in r["row"]:
            rules += ", stability"
        levels = ", ".join(_fmt(v, ",.3f") for v in r.get("levels", [])) or "-"
        # A ratio only between answers that are both proven: a time-out's seconds are the cap's.
        vs = "-"
        ours = by.get((r["row"], "ours"))
        if r["method"] == "highs" and _proven(r) and ours and _proven(ours):
            vs = f"{r['total_s'] / ours['total_s']:.1f} x ours"
        plain = by.get(("plain-1500x300", "ours"))
        if r["row"] == "tiers-moves-1500x300" and _proven(r) and plain and _proven(plain):
            vs = f"{r['total_s'] / plain['total_s']:.1f} x plain"
        status = r.get("status", "?")
        cut = r.get("cut")
        if cut and cut.get("level"):
            status += f" in {cut['level']} (best {_fmt(cut.get('incumbent'), ',.3f')}, bound {_fmt(cut.get('bound'), ',.3f')})"
        if status == "error":
            status = "error: " + r.get("error", "").strip().splitlines()[-1][:120].replace("|", "/")
        out.append(
            f"| {r['row']} | {rules} | {r['method']} | {status} | {_fmt(r.get('total_s'))} | {_fmt(r.get('cpu_s'))} | "
            f"{_fmt(r.get('peak_rss_mb'), '.0f')} | {levels} | {_gap(r)} | {TARGETS[r['row']]} | {vs} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--highs-cap", type=float, default=600.0, help="seconds for HiGHS, all levels"
    )
    parser.add_argument(
        "--write", action="store_true", help="append the table to benchmarks/RESULTS.md"
    )
    parser.add_argument("--child", nargs=2, metavar=("ROW", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(measure(*args.child, threads=args.threads, highs_cap=args.highs_cap)))
        return

    rows = []
    for name in args.only:
        for method in METHODS[name]:
            r = run_child(name, method, args)
            rows.append(r)
            print(
                f"{name:>22} {method:>5}: {r.get('status')}, {_fmt(r.get('total_s'))} s, "
                f"levels {r.get('levels', '-')}",
                flush=True,
            )
            if r.get("error"):
                print(r["error"], file=sys.stderr)
    text = table(rows)
    print()
    print(text)
    if args.write:
        import ortools
        import scipy

        load = (
            Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
        )
        env = (
            f"{dt.date.today().isoformat()}, Python {platform.python_version()}, OR-Tools "
            f"{ortools.__version__}, SciPy {scipy.__version__} (HiGHS), {platform.machine()}, "
            f"{_cpus()} CPUs, {args.threads} solver threads, load average {load} at the end; "
            f"HiGHS capped at {args.highs_cap:.0f} s for all levels."
        )
        logs = []
        for r in rows:
            if r.get("status") == "error":
                logs += [
                    "",
                    f"Error of `{r['row']}` ({r['method']}):",
                    "",
                    *[f"    {x}" for x in r.get("error", "").strip().splitlines()[-12:]],
                ]
        section = [
            "",
            "## Business rules (`benchmarks/business_rules.py`)",
            "",
            "Whole solve = parse, build, solve, verify and metrics (`allocator.engine.solve`); "
            "HiGHS = the same model as one MILP per lexicographic level "
            "(`tests/helpers/highs_reference.py`), build included.",
            "",
            text,
            "",
            env,
            *logs,
        ]
        path = HERE / "RESULTS.md"
        with path.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(section) + "\n")
        print(f"\nappended to {path}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
