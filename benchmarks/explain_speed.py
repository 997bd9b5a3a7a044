"""All-workers pricing speed: every higher choice of every worker priced from the certificate.

Run by hand (never in the test suite)::

    .venv/bin/python benchmarks/explain_speed.py                     # prints a table
    .venv/bin/python benchmarks/explain_speed.py --markdown benchmarks/RESULTS.md   # appends it

For each non-stable benchmark instance (``benchmarks/instances.py``) it measures, after one
solve:

* **seed-dependent**: :func:`allocator.explain.seed_dependent_worker_ids` (what every solve
  now adds to its result: certificate + bounded Dijkstra);
* **prices**: :func:`allocator.explain.price_all_pairs`: certificate, all-pairs shortest
  paths on the line graph, and the price of every higher choice of every worker (the target:
  at most 10 s on 1,500 x 300);
* **statements**: :func:`allocator.explain.explain_all`: the same plus the moves of every
  priced pair, as ``allocator-explain/1`` dicts for every worker;
* **one pinned re-solve** for comparison (what a per-pair re-solve would cost, times the
  number of pairs).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from instances import INSTANCES, generate_instance  # noqa: E402

from allocator import engine, explain  # noqa: E402
from allocator.problem import ProblemData  # noqa: E402
from allocator.snapshot import RunSnapshot  # noqa: E402


def measure(name: str) -> dict:
    workers, lines, seed, stable = INSTANCES[name]
    snap = RunSnapshot.parse(generate_instance(workers, lines, seed, stability=stable))
    problem = ProblemData.from_snapshot(snap)
    t = time.perf_counter()
    result = engine.solve_problem_data(problem, with_seed_dependence=False)
    solve = time.perf_counter() - t
    t = time.perf_counter()
    dependent = explain.seed_dependent_worker_ids(problem, result.assignment)
    seed_s = time.perf_counter() - t
    t = time.perf_counter()
    priced = explain.price_all_pairs(result)
    price_s = time.perf_counter() - t
    t = time.perf_counter()
    statements = explain.explain_all(result)
    all_s = time.perf_counter() - t
    n_higher = sum(len(x["higher_choices"]) for x in statements)
    s, p = int(priced["workers"][0]), int(priced["lines"][0])
    t = time.perf_counter()
    engine.solve_problem_data(explain.pinned_problem(problem, s, p), with_seed_dependence=False)
    one = time.perf_counter() - t
    return {
        "name": name, "solve": solve, "seed": seed_s, "n_dependent": len(dependent or []),
        "prices": price_s, "n_pairs": len(priced["prices"]), "statements": all_s,
        "n_higher": n_higher, "one_resolve": one,
    }


def table(rows: list[dict]) -> str:
    out = [
        "| run | solve | seed-dependent (workers) | all prices (pairs) | all statements (higher choices) | one pinned re-solve | re-solve per pair (est.) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['name']} | {r['solve']:.2f} s | {r['seed']:.2f} s ({r['n_dependent']:,}) | "
            f"{r['prices']:.2f} s ({r['n_pairs']:,}) | {r['statements']:.2f} s ({r['n_higher']:,}) | "
            f"{r['one_resolve']:.2f} s | {r['one_resolve'] * r['n_pairs'] / 3600:.1f} h |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["medium-1500x300", "large-5000x1000"])
    parser.add_argument("--markdown", type=Path, help="append the table to this file")
    args = parser.parse_args(argv)
    rows = [measure(name) for name in args.only]
    text = table(rows)
    print(text)
    if args.markdown:
        head = (
            f"\n## All-workers pricing (`benchmarks/explain_speed.py`, {time.strftime('%Y-%m-%d')}, "
            f"{platform.machine()}, Python {platform.python_version()})\n\n"
        )
        with open(args.markdown, "a", encoding="utf-8") as f:
            f.write(head + text + "\n")


if __name__ == "__main__":
    main()
