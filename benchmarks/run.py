"""Solve-speed benchmarks: our solvers against a naive CP-SAT model and HiGHS.

Run by hand (never in the test suite)::

    .venv/bin/python benchmarks/run.py                 # everything, prints a table
    .venv/bin/python benchmarks/run.py --markdown benchmarks/RESULTS.md
    .venv/bin/python benchmarks/run.py --only small-140x60 --methods ours

Each measurement runs in a fresh child process, so its peak memory (``ru_maxrss``) is its
own. For every instance of ``benchmarks/instances.py`` it reports:

* **ours**: ``RunSnapshot.parse`` + ``ProblemData.from_snapshot`` (build) and
  ``solve_problem`` (solve), with the status, objective and, in stable mode, the bound and
  gap. The targets (2 cores): 140 x 60 < 0.2 s, 1,500 x 300 < 2 s, 5,000 x 1,000 < 15 s,
  whole solve including the build; stable 300 x 80 proven or its gap reported in 30 s.
* **naive**: the plain CP-SAT model (``benchmarks/naive.py``: costs x 10^6, no
  flow, no bound, no hint) with a time cap.
* **highs**: the same transportation model as a MILP for HiGHS (``scipy.optimize.milp``),
  with a time cap; on the stable instances, the plain stability model
  (``benchmarks/highs_stable.py``: one constraint per pair that can block, no
  preprocessing), with its own time cap (``--highs-stable-cap``).

The non-stable instances ignore stability in the naive and HiGHS models, as ours does. The
naive CP-SAT model has no stability constraints and is not run on the stable instances.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

METHODS = ("ours", "naive", "highs")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(name: str, method: str, *, threads: int, time_cap: float, stable_time: float) -> dict:
    """One measurement, in this process (the parent runs it in a child)."""
    import numpy as np
    from instances import INSTANCES, named_instance
    from naive import naive_cpsat

    from allocator.problem import ProblemData
    from allocator.snapshot import RunSnapshot
    from allocator.solvers import SolveOptions, solve_problem

    m, n, _seed, stable = INSTANCES[name]
    data = named_instance(name)
    base_rss = _rss_mb()

    t0 = time.perf_counter()
    snap = RunSnapshot.parse(data)
    problem = ProblemData.from_snapshot(snap)
    build = time.perf_counter() - t0
    pairs = int(problem.allowed.sum())
    row: dict = {"instance": name, "method": method, "workers": m, "lines": n, "pairs": pairs, "build_s": build}

    t1 = time.perf_counter()
    if method == "ours":
        out = solve_problem(problem, SolveOptions(threads=threads, time_limit=stable_time if stable else time_cap))
        row.update(status=str(out.status), objective=out.objective, bound=out.best_bound)
        if stable:
            row["log"] = out.log
    elif method == "highs" and stable:
        from highs_stable import plain_stable_milp

        row.update(plain_stable_milp(problem, time_cap))
    elif method == "highs":
        row.update(_highs(problem, time_cap))
    elif method == "naive":
        opts = SolveOptions(threads=threads, time_limit=time_cap)
        out = naive_cpsat(problem, opts)
        row.update(status=str(out.status), objective=out.objective, bound=out.best_bound)
    else:
        raise ValueError(method)
    row["solve_s"] = time.perf_counter() - t1
    row["total_s"] = row["build_s"] + row["solve_s"]
    row["peak_rss_mb"] = _rss_mb()
    row["rss_before_mb"] = base_rss
    if row.get("objective") is not None and row.get("bound") is not None:
        row["gap"] = (row["objective"] - row["bound"]) / max(abs(row["objective"]), 1e-12)
    _ = np
    return row


def _highs(problem, time_cap: float) -> dict:
    """The transportation problem with lower bounds as a MILP (stability ignored)."""
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    s, j = np.nonzero(problem.allowed)
    k = s.size
    rows = np.concatenate([s, problem.n_workers + j])
    cols = np.concatenate([np.arange(k), np.arange(k)])
    a = coo_matrix((np.ones(2 * k), (rows, cols)), shape=(problem.n_workers + problem.n_lines, k)).tocsr()
    lo = np.concatenate([np.ones(problem.n_workers), problem.mandatory.astype(float)])
    hi = np.concatenate([np.ones(problem.n_workers), problem.capacity.astype(float)])
    res = milp(
        problem.cost[s, j],
        constraints=LinearConstraint(a, lo, hi),
        integrality=np.ones(k),
        bounds=Bounds(0, 1),
        options={"time_limit": time_cap, "disp": False},
    )
    status = {0: "optimal", 1: "feasible" if res.x is not None else "no_solution", 2: "infeasible"}.get(res.status, f"status {res.status}")
    objective = None
    if res.x is not None:
        chosen = res.x > 0.5
        objective = float(problem.cost[s[chosen], j[chosen]].sum())
    return {"status": status, "objective": objective, "bound": getattr(res, "mip_dual_bound", None)}


def run_child(name: str, method: str, args: argparse.Namespace, time_cap: float) -> dict:
    cmd = [
        sys.executable, __file__, "--child", name, method,
        "--threads", str(args.threads), "--time-cap", str(time_cap), "--stable-time", str(args.stable_time),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=max(time_cap, args.stable_time) * 3 + 600)
    if done.returncode != 0:
        return {"instance": name, "method": method, "status": "error", "error": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(x, spec=".3f", none="-"):
    return none if x is None else format(x, spec)


def _ratio(x: float) -> str:
    return f"{x:.0f}x" if x >= 10 else f"{x:.1f}x"


def table(rows: list[dict]) -> str:
    head = (
        "| run | pairs | method | status | build s | solve s | total s | peak RSS MB | objective | gap | vs ours |\n"
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    ours = {r["instance"]: r for r in rows if r["method"] == "ours" and "total_s" in r}
    lines = [head]
    for r in rows:
        if "total_s" not in r:
            lines.append(f"| {r['instance']} | | {r['method']} | {r['status']} | | | | | | | |")
            continue
        base = ours.get(r["instance"])
        ratio = "1" if r["method"] == "ours" else (_ratio(r["total_s"] / base["total_s"]) if base else "-")
        if r["method"] != "ours" and r["status"] != "optimal" and base:
            ratio = "> " + ratio  # cut off by the time cap before proving optimality
        gap = fmt(100 * r["gap"], ".2f") + " %" if r.get("gap") is not None and r["status"] != "optimal" else "-"
        lines.append(
            f"| {r['instance']} | {r['pairs']:,} | {r['method']} | {r['status']} | {r['build_s']:.3f} | "
            f"{r['solve_s']:.3f} | {r['total_s']:.3f} | {r['peak_rss_mb']:.0f} | {fmt(r.get('objective'), ',.3f')} | "
            f"{gap} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from instances import INSTANCES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=list(INSTANCES), help="instance names")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time-cap", type=float, default=60.0, help="cap for naive CP-SAT and HiGHS")
    parser.add_argument("--stable-time", type=float, default=30.0, help="our time limit in stable mode")
    parser.add_argument("--highs-stable-cap", type=float, default=120.0, help="cap for HiGHS on the plain stability model")
    parser.add_argument("--highs-stable-max-workers", type=int, default=300, help="larger stable runs get no HiGHS row")
    parser.add_argument("--markdown", type=Path, help="write the table (and details) to this file")
    parser.add_argument("--child", nargs=2, metavar=("INSTANCE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        name, method = args.child
        row = measure(name, method, threads=args.threads, time_cap=args.time_cap, stable_time=args.stable_time)
        print(json.dumps(row))
        return

    rows = []
    for name in args.only:
        stable = INSTANCES[name][3]
        for method in args.methods:
            if stable and method == "naive":
                continue  # the naive model has no stability constraints
            if stable and method == "highs" and INSTANCES[name][0] > args.highs_stable_max_workers:
                continue  # the plain model has a row per eligible pair: too large to build here
            cap = args.highs_stable_cap if stable and method == "highs" else args.time_cap
            row = run_child(name, method, args, cap)
            rows.append(row)
            print(
                f"{name:>18} {method:>6}: {row.get('status')}, total {fmt(row.get('total_s'))} s "
                f"(build {fmt(row.get('build_s'))}, solve {fmt(row.get('solve_s'))}), "
                f"peak {fmt(row.get('peak_rss_mb'), '.0f')} MB, objective {fmt(row.get('objective'), ',.3f')}",
                flush=True,
            )
            if row.get("error"):
                print(row["error"], file=sys.stderr)
    print()
    print(table(rows))
    if args.markdown:
        import ortools

        env = (
            f"Python {platform.python_version()}, OR-Tools {ortools.__version__}, "
            f"{platform.machine()}, {_cpus()} CPUs, {args.threads} solver threads; "
            f"naive CP-SAT and HiGHS capped at {args.time_cap:.0f} s (HiGHS on the plain stability "
            f"model at {args.highs_stable_cap:.0f} s), stable mode limited to {args.stable_time:.0f} s."
        )
        details = [r for r in rows if r.get("log")]
        text = [table(rows), "", env]
        for r in details:
            text += ["", f"Solve log of `{r['instance']}`:", "", *[f"    {line}" for line in r["log"]]]
        args.markdown.write_text("\n".join(text) + "\n", encoding="utf-8")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
