"""Load and soak: dashboard sessions and headless workers on one database (run by hand).

Reproduces issue 9, item 15 on this machine, on loopback only, and stops by itself:

1. Starts ONE embedded PostgreSQL of its own (data folder in a temp dir, removed at the end),
   migrates it and imports ``--runs`` (100) small generated runs through the service, as
   pending runs (sizes 20 x 8 to 200 x 80; one in ten a stable run with a 15 s time limit,
   which runs to its limit, so the lease heartbeat is exercised), then the demo run
   (140 x 60), which the dashboard sessions work on.
2. Starts ``streamlit run app/streamlit_app.py`` on a free local port against that database
   and opens ``--sessions`` (8) sessions in one headless Chromium (Playwright, Debian's
   ``/usr/bin/chromium``), each its own browser context, i.e. its own Streamlit session.
3. **Drain**: ``--workers`` (3) ``allocator process-pending --lease 30`` processes drain the
   queue while every session solves over and over (name the scenario, move the supervisor
   voice, Solve, every third solve Save, then open another page and come back; a pause of
   1-3 s between a planner's actions; each wait gives up after 90 s, a solve after 180 s,
   and counts an error, with a screenshot under ``test-output/reliability/``).
   ``process-pending`` stops when the queue is empty; each worker slot starts a new one
   ``--idle-pause`` (10) seconds later (as a timer or supervisor would). The sessions are
   open, each on the Scenario page, before the workers start.
4. **Soak**: ``--soak-minutes`` (15) more of the same, while a new run is imported with
   ``allocator import FILE`` (the command line) ``--import-every`` (10) seconds after the
   previous import ended.
5. Stops the imports and the sessions, lets the workers finish the queue (bounded), stops
   everything it started (by pid) and counts, from the database:

   - **solved**: runs ``complete``; **lost**: runs imported but never completed (pending,
     running or failed at the end);
   - **duplicates**: a run solved twice, by the schema's own records: more than one
     ``complete`` entry in ``allocator_publication_log`` for a run, a ``complete`` entry
     that replaced allocations already there, a run whose ``allocator_py_allocations`` rows
     are not exactly one per worker of the run, or a run reported ``complete`` by two worker
     processes; runs claimed more than once (``attempts > 1``) and worker solves that found
     their run taken over (``lost`` outcomes) are counted too;
   - saved scenarios in the database against the saves the sessions saw confirmed.

**Page response** is measured in the browser, as a planner sees it: from the click on a page
in the sidebar until its title is shown, Streamlit has finished running the script and every
chart has drawn (as ``benchmarks/dashboard_speed.py``). **Solve response**: from the click on
Solve until the page says "'<name>' solved in". **Save response**: click on Save until the
"Saved" toast. All include Playwright's round trips. **Peak memory**: resident set (RSS) of
each process, sampled every 2 s with psutil; for PostgreSQL (a postmaster and a backend per
connection sharing one buffer pool) the sum of proportional set sizes (PSS) is given too,
which counts shared memory once.

    .venv/bin/python benchmarks/reliability.py [--soak-minutes 15] [--sessions 8]
        [--workers 3] [--runs 100] [--markdown out.md]

Exit code 0 when nothing was duplicated or lost and no error was seen, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's allocator, as the processes it starts use
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "benchmarks"))

from dashboard_harness import APP, APP_IDLE, CHROMIUM, CHROMIUM_ARGS, EXCEPTION, free_port  # noqa: E402

PY = sys.executable
DEMO_NAME = "Load demo (140 x 60)"
SIZES = [(20, 8), (40, 15), (60, 25), (100, 40), (140, 60), (200, 80)]
PAGES = ["Results", "Eligibility", "Compare", "Publish", "Runs"]
ACTION_TIMEOUT = 90_000  # ms
SOLVE_TIMEOUT = 180_000  # ms
THINK = (1.0, 3.0)  # s: a planner's pause between two actions
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


# --------------------------------------------------------------------------- records


@dataclass
class Stats:
    """Everything measured, shared by the threads and the browser tasks (appends are atomic)."""

    phase: str = "setup"
    page: list[tuple[str, str, float]] = field(default_factory=list)  # (phase, page, s)
    solve: list[tuple[str, float]] = field(default_factory=list)
    save: list[tuple[str, float]] = field(default_factory=list)
    first_load: list[float] = field(default_factory=list)
    saved_names: list[str] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)  # phases in which a session found its rules reset
    errors: list[str] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)  # run ids
    import_seconds: list[float] = field(default_factory=list)
    worker_lines: list[str] = field(default_factory=list)
    worker_stderr: list[str] = field(default_factory=list)
    worker_exits: Counter = field(default_factory=Counter)
    worker_processes: int = 0
    peak_rss: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # MB
    marks: dict[str, float] = field(default_factory=dict)

    def error(self, where: str, what: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {self.phase} · {where}: {what}"
        self.errors.append(line)
        print("ERROR", line, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- runs


def generated_run(i: int, seed: int) -> dict:
    """Run ``i`` of the queue: a small demo-generator run, one in ten stable (15 s limit)."""
    from instances import generate_instance

    from allocator.demo import demo_snapshot

    rng = random.Random(seed * 1_000 + i)
    if i % 10 == 9:
        snap = generate_instance(150, 50, seed * 1_000 + i, stability=True)
        snap["settings"]["max_seconds"] = 15
    else:
        w, n = rng.choice(SIZES)
        snap = demo_snapshot(w, n, seed=seed * 1_000 + i)
        snap["settings"]["max_seconds"] = 30
    return snap


def child_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOCATOR_", "SUPABASE_"))}
    env.update(
        ALLOCATOR_DATABASE_URL=url,
        ALLOCATOR_PLANNER_NAME="load test",
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
    )
    return env


# --------------------------------------------------------------------------- processes


class Procs:
    """The processes this script started, by pid (only those are ever stopped)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_role: dict[int, str] = {}
        self.popen: dict[int, subprocess.Popen] = {}

    def add(self, p: subprocess.Popen, role: str) -> None:
        with self.lock:
            self.by_role[p.pid] = role
            self.popen[p.pid] = p

    def drop(self, p: subprocess.Popen) -> None:
        with self.lock:
            self.by_role.pop(p.pid, None)
            self.popen.pop(p.pid, None)

    def live(self) -> list[tuple[int, str]]:
        with self.lock:
            return [(pid, r) for pid, r in self.by_role.items() if self.popen[pid].poll() is None]

    def stop_all(self, timeout: float = 20.0) -> None:
        with self.lock:
            items = list(self.popen.values())
        for p in items:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in items:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(5)


def worker_slot(slot: int, url: str, lease: float, pause: float, procs: Procs, stats: Stats,
                stop: threading.Event) -> None:
    """Run ``process-pending`` again and again (it stops when the queue is empty) until ``stop``."""
    k = 0
    while not stop.is_set():
        k += 1
        cmd = [PY, "-m", "allocator", "process-pending", "--lease", f"{lease:g}", "--worker", f"load-w{slot}-{k}"]
        p = subprocess.Popen(cmd, cwd=REPO, env=child_env(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        procs.add(p, f"worker{slot}")
        stats.worker_processes += 1
        err_lines: list[str] = []
        t = threading.Thread(target=err_lines.extend, args=(p.stderr,), daemon=True)
        t.start()
        for line in p.stdout:  # type: ignore[union-attr]
            stats.worker_lines.append(line.rstrip("\n"))
        rc = p.wait()
        t.join(5)
        procs.drop(p)
        stats.worker_exits[rc] += 1
        for line in err_lines:
            line = line.rstrip("\n")
            if line and not line.startswith("Processed "):
                stats.worker_stderr.append(line)
        if rc != 0:
            stats.error(f"worker {slot}", f"process-pending exited {rc}: " + " | ".join(err_lines[-5:]).strip())
        stop.wait(pause)


def importer(files: list[Path], every: float, url: str, procs: Procs, stats: Stats, stop: threading.Event) -> None:
    """Import a new run every ``every`` seconds with ``allocator import FILE`` until ``stop``."""
    for path in files:
        if stop.wait(every):
            return
        started = time.perf_counter()
        p = subprocess.Popen([PY, "-m", "allocator", "import", str(path)], cwd=REPO, env=child_env(url),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        procs.add(p, "import")
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            stats.error("import", f"{path.name}: no answer in 120 s")
            continue
        finally:
            procs.drop(p)
        stats.import_seconds.append(time.perf_counter() - started)
        m = re.search(UUID, out or "")
        if p.returncode != 0 or not m:
            stats.error("import", f"{path.name}: exit {p.returncode}: {(err or out).strip()[-300:]}")
        else:
            stats.imported.append(m.group(0))


def postgres_pids(pgdata: Path) -> list[int]:
    import psutil

    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        top = psutil.Process(pid)
        return [pid] + [c.pid for c in top.children(recursive=True)]
    except (OSError, ValueError, IndexError, psutil.Error):
        return []


def monitor(pgdata: Path, procs: Procs, stats: Stats, stop: threading.Event, browser_pid: list[int]) -> None:
    """Sample memory every 2 s: peak RSS per role, and PostgreSQL's summed RSS and PSS."""
    import psutil

    def rss_tree(pid: int) -> tuple[float, float]:
        try:
            p = psutil.Process(pid)
            ps = [p] + p.children(recursive=True)
        except psutil.Error:
            return 0.0, 0.0
        total = biggest = 0.0
        for q in ps:
            try:
                r = q.memory_info().rss / 2**20
            except psutil.Error:
                continue
            total += r
            biggest = max(biggest, r)
        return total, biggest

    while not stop.wait(2.0):
        peak = stats.peak_rss
        workers_now = 0.0
        for pid, role in procs.live():
            total, _ = rss_tree(pid)
            key = "worker (one process-pending)" if role.startswith("worker") else role
            peak[key] = max(peak[key], total)
            if role.startswith("worker"):
                workers_now += total
        peak["workers (all at once)"] = max(peak["workers (all at once)"], workers_now)
        rss = pss = biggest = 0.0
        for pid in postgres_pids(pgdata):
            try:
                info = psutil.Process(pid).memory_full_info()
            except psutil.Error:
                continue
            rss += info.rss / 2**20
            pss += getattr(info, "pss", 0) / 2**20
            biggest = max(biggest, info.rss / 2**20)
        peak["postgres (sum of RSS)"] = max(peak["postgres (sum of RSS)"], rss)
        peak["postgres (sum of PSS)"] = max(peak["postgres (sum of PSS)"], pss)
        peak["postgres (largest process RSS)"] = max(peak["postgres (largest process RSS)"], biggest)
        if browser_pid:
            total, _ = rss_tree(browser_pid[0])
            peak["chromium (every session; sum of RSS)"] = max(peak["chromium (every session; sum of RSS)"], total)


# --------------------------------------------------------------------------- browser


async def wait_idle(page, timeout: float = ACTION_TIMEOUT) -> None:
    await page.wait_for_selector(APP_IDLE, timeout=timeout)


async def charts_drawn(page, timeout: float = ACTION_TIMEOUT) -> None:
    await page.wait_for_function(
        """() => Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]'))
                 .every(c => c.querySelector('.main-svg'))""",
        timeout=timeout,
    )


async def open_page(page, title: str) -> float:
    """Click ``title`` in the sidebar; seconds until its title shows, the script is done and charts drew."""
    started = time.perf_counter()
    await page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    await page.wait_for_function(
        """t => { const a = Array.from(document.querySelectorAll('[data-testid="stSidebarNav"] a'))
                   .find(a => a.innerText.trim().endsWith(t));
                  return a && location.href === a.href; }""",
        arg=title,
        timeout=ACTION_TIMEOUT,
    )
    await page.locator('[data-testid="stMain"] h1', has_text=title).first.wait_for(timeout=ACTION_TIMEOUT)
    await wait_idle(page)
    await charts_drawn(page)
    return time.perf_counter() - started


async def set_text(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    await box.fill(value)
    await box.press("Enter")
    await wait_idle(page)


async def set_slider(page, key: str, target: int) -> None:
    thumb = page.locator(f".st-key-{key} input[type='range']")
    now = int(float(await thumb.input_value()))
    if now == target:
        return
    await thumb.focus()
    for _ in range(abs(target - now)):
        await thumb.press("ArrowRight" if target > now else "ArrowLeft")
    await page.wait_for_timeout(300)  # the slider sends its value after a short debounce
    await wait_idle(page)


async def choose_demo_run(page) -> None:
    """Make the demo run the current run in the sidebar (a new session starts on the newest run)."""
    box = page.locator(".st-key-sidebar_run").get_by_role("combobox")
    if DEMO_NAME in await box.input_value():
        return
    # Typed, as a planner would with a long list: the drop-down draws only the options in view.
    await box.click()
    await box.press_sequentially(DEMO_NAME[:9])
    await page.get_by_role("option").filter(has_text=DEMO_NAME).first.click()
    await wait_idle(page)
    shown = await box.input_value()
    if DEMO_NAME not in shown:
        raise RuntimeError(f"the sidebar shows {shown!r} as the current run, not the demo run")


async def evidence(page, tag: str) -> str:
    """What the page shows after a failure: a screenshot and its text, under test-output/."""
    out = REPO / "test-output" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    try:
        await page.screenshot(path=str(out / f"{tag}.png"))
        text = await page.locator('[data-testid="stApp"]').inner_text(timeout=5_000)
        (out / f"{tag}.txt").write_text(text, encoding="utf-8")
        return f" (page: test-output/reliability/{tag}.png)"
    except Exception as exc:  # noqa: BLE001 - evidence is best effort
        return f" (no screenshot: {type(exc).__name__})"


async def rules_reset(page) -> bool:
    """Whether the Scenario page shows the rules at their lowest values with Solve greyed out."""
    limit = await page.get_by_label("Time limit (seconds)", exact=True).input_value()
    solve_off = await page.locator(".st-key-sc_solve").get_by_role("button").is_disabled()
    return limit == "1" and solve_off


async def check_no_exception(page, stats: Stats, where: str) -> None:
    boxes = page.locator(EXCEPTION)
    if await boxes.count():
        stats.error(where, "the page shows an exception: " + (await boxes.first.inner_text())[:300])


async def session(i: int, browser, url: str, stats: Stats, stop: asyncio.Event, ready: list[int]) -> None:
    """One planner: open the dashboard, then solve, save, look at another page, over and over."""
    ctx = await browser.new_context(viewport={"width": 1400, "height": 900})
    # The machine is shared and 8 browser sessions draw on its 2 cores: wait long before
    # calling an action failed (each failure is counted as an error).
    ctx.set_default_timeout(ACTION_TIMEOUT)
    page = await ctx.new_page()
    where = f"session {i}"
    rng = random.Random(i)

    async def start() -> None:
        t0 = time.perf_counter()
        await page.goto(url, timeout=120_000)
        await page.wait_for_selector(APP, timeout=120_000)
        await page.locator('[data-testid="stMain"] h1', has_text="Runs").first.wait_for(timeout=120_000)
        await wait_idle(page, timeout=120_000)
        stats.first_load.append(time.perf_counter() - t0)
        await choose_demo_run(page)
        await open_page(page, "Scenario")

    try:
        await start()
    except Exception as exc:  # noqa: BLE001 - counted, and the session gives up
        stats.error(where, f"could not open the dashboard: {type(exc).__name__}: {str(exc)[:300]}")
        await ctx.close()
        return
    finally:
        ready.append(i)
    n = 0
    failures_in_a_row = 0
    while not stop.is_set():
        n += 1
        name = f"Load s{i} n{n}"
        try:
            await asyncio.sleep(rng.uniform(*THINK))
            await set_text(page, "Scenario name", name)
            await set_slider(page, "sc_alpha", 25 + rng.randrange(0, 11))
            if await rules_reset(page):
                # Seen under load: the rules come back at their lowest values (time limit 1 s,
                # seed 0, ties off), so the run's ties make the scenario unsolvable and Solve
                # is greyed out. Counted, with evidence; then the planner's way out.
                stats.resets.append(stats.phase)
                stats.error(where, f"solve {n}: the Scenario page's rules were reset to their lowest values"
                            + (await evidence(page, f"reset-s{i}-n{n}") if len(stats.resets) <= 5 else ""))
                await page.locator(".st-key-sc_reset").get_by_role("button").click()
                await wait_idle(page)
                await set_text(page, "Scenario name", name)
            t0 = time.perf_counter()
            await page.locator(".st-key-sc_solve button").click()
            await page.get_by_text(re.compile(rf"'{re.escape(name)}' solved in")).first.wait_for(timeout=SOLVE_TIMEOUT)
            stats.solve.append((stats.phase, time.perf_counter() - t0))
            await wait_idle(page)
            await check_no_exception(page, stats, where)
            if n % 3 == 1:
                t0 = time.perf_counter()
                await page.locator(".st-key-sc_save").get_by_role("button", name="Save scenario").click()
                await page.locator('[data-testid="stToast"]').filter(has_text="Saved").filter(
                    has_text=name).first.wait_for(timeout=ACTION_TIMEOUT)
                stats.save.append((stats.phase, time.perf_counter() - t0))
                stats.saved_names.append(name)
                await wait_idle(page)
            await asyncio.sleep(rng.uniform(*THINK))
            title = PAGES[(n + i) % len(PAGES)]
            phase = stats.phase
            secs = await open_page(page, title)
            stats.page.append((phase, title, secs))
            await check_no_exception(page, stats, f"{where} {title}")
            phase = stats.phase
            secs = await open_page(page, "Scenario")
            stats.page.append((phase, "Scenario", secs))
            await check_no_exception(page, stats, f"{where} Scenario")
            failures_in_a_row = 0
        except Exception as exc:  # noqa: BLE001 - counted; the session reloads and goes on
            failures_in_a_row += 1
            stats.error(where, f"solve {n}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                        + await evidence(page, f"s{i}-n{n}"))
            if failures_in_a_row >= 5:
                stats.error(where, "5 failures in a row: this session stops")
                break
            if stop.is_set():
                break
            try:
                await start()
            except Exception as exc2:  # noqa: BLE001
                stats.error(where, f"reload failed: {type(exc2).__name__}: {str(exc2)[:200]}")
    await ctx.close()


# --------------------------------------------------------------------------- database


def queue_counts(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("select status, count(*) from public.allocator_py_runs group by status").fetchall()
    return {s: int(n) for s, n in rows}


def db_figures(url: str, expected: list[str], saved_names: list[str], worker_lines: list[str]) -> dict:
    """Solved, lost and duplicated runs and scenarios, from the schema's own records."""
    import psycopg

    out: dict = {}
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "select id::text, status, attempts, error from public.allocator_py_runs").fetchall()
        status = {r[0]: r[1] for r in rows}
        out["runs_in_db"] = len(rows)
        out["by_status"] = dict(Counter(r[1] for r in rows))
        out["reclaimed"] = sorted((r[0], r[2]) for r in rows if r[2] > 1)
        out["failed"] = [(r[0], r[3]) for r in rows if r[1] == "failed"]
        out["missing"] = [rid for rid in expected if rid not in status]
        out["lost"] = [(rid, status.get(rid)) for rid in expected if status.get(rid) != "complete"]
        out["solved"] = sum(1 for rid in expected if status.get(rid) == "complete")
        out["double_complete"] = conn.execute(
            "select run_id::text, count(*) from public.allocator_publication_log where action = 'complete' "
            "group by run_id having count(*) > 1").fetchall()
        out["complete_entries"] = conn.execute(
            "select count(*) from public.allocator_publication_log where action = 'complete'").fetchone()[0]
        out["replaced_on_complete"] = conn.execute(
            "select run_id::text from public.allocator_publication_log where action = 'complete' "
            "and previous_allocations <> '[]'::jsonb").fetchall()
        out["other_log_entries"] = conn.execute(
            "select action, count(*) from public.allocator_publication_log where action <> 'complete' "
            "group by action").fetchall()
        out["allocation_mismatch"] = conn.execute(
            """select r.id::text, (select count(*) from public.allocator_py_allocations a where a.run_id = r.id),
                      (select count(*) from public.allocator_run_worker_ids(r.id))
                 from public.allocator_py_runs r
                where (select count(*) from public.allocator_py_allocations a where a.run_id = r.id)
                      <> case when r.status = 'complete'
                              then (select count(*) from public.allocator_run_worker_ids(r.id)) else 0 end""").fetchall()
        out["allocation_rows"] = conn.execute("select count(*) from public.allocator_py_allocations").fetchone()[0]
        names = conn.execute("select name from public.allocator_scenarios").fetchall()
        got = Counter(n for (n,) in names)
    wanted = Counter(saved_names)
    out["scenarios_in_db"] = sum(got.values())
    out["scenarios_confirmed"] = len(saved_names)
    out["scenarios_doubled"] = sorted(n for n in got if got[n] > 1)
    out["scenarios_missing"] = sorted(n for n in wanted if n not in got)
    out["scenarios_unconfirmed"] = sorted(n for n in got if n not in wanted)
    by_worker = Counter()
    outcomes = Counter()
    for line in worker_lines:
        m = re.match(rf"^({UUID}): (\w+) in", line)
        if m:
            outcomes[m.group(2)] += 1
            if m.group(2) == "complete":
                by_worker[m.group(1)] += 1
    out["worker_outcomes"] = dict(outcomes)
    out["worker_double_complete"] = sorted(r for r, n in by_worker.items() if n > 1)
    out["worker_complete_not_in_db"] = sorted(r for r in by_worker if status.get(r) != "complete")
    return out


# --------------------------------------------------------------------------- main


async def drive(args, url: str, pgdata: Path, stats: Stats, procs: Procs, soak_files: list[Path]) -> None:
    from playwright.async_api import async_playwright

    stop_workers = threading.Event()
    stop_imports = threading.Event()
    stop_monitor = threading.Event()
    stop_sessions = asyncio.Event()
    browser_pid: list[int] = []
    mon = threading.Thread(target=monitor, args=(pgdata, procs, stats, stop_monitor, browser_pid), daemon=True)
    mon.start()

    port = free_port()
    log_path = Path(args.tmp) / "streamlit.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    dash = subprocess.Popen(
        [PY, "-m", "streamlit", "run", "app/streamlit_app.py", "--server.headless", "true", "--server.port",
         str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"],
        cwd=REPO, env=child_env(url), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    procs.add(dash, f"dashboard (one streamlit server, {args.sessions} sessions)")
    dash_url = f"http://127.0.0.1:{port}/"
    workers: list[threading.Thread] = []
    imp: threading.Thread | None = None
    try:
        import urllib.request

        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(dash_url + "_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if dash.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("streamlit did not start:\n" + log_path.read_text()[-2000:])
            await asyncio.sleep(0.5)
        say(f"dashboard on {dash_url}")

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            with contextlib.suppress(Exception):
                # The browser's own process, for its memory (a child of Playwright's driver).
                import psutil

                for c in psutil.Process().children(recursive=True):
                    if "chromium" in c.name() and "--type=" not in " ".join(c.cmdline()):
                        browser_pid.append(c.pid)
                        break
            # The sessions open first (each solves from the moment it is on the Scenario page),
            # then the workers start: the queue drains while every session is solving.
            stats.phase = "warm-up"
            ready: list[int] = []
            tasks = [asyncio.create_task(session(i + 1, browser, dash_url, stats, stop_sessions, ready))
                     for i in range(args.sessions)]
            deadline = time.monotonic() + 300
            while len(ready) < args.sessions and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            say(f"{len(ready)} sessions open")
            stats.phase = "drain"
            stats.marks["drain_start"] = time.monotonic()
            for s in range(args.workers):
                t = threading.Thread(target=worker_slot, args=(s + 1, url, args.lease, args.idle_pause, procs, stats, stop_workers),
                                     daemon=True)
                t.start()
                workers.append(t)
            say(f"{args.sessions} sessions and {args.workers} workers started; draining {args.runs + 1} runs")

            # Drain: until no run is pending or running (bounded).
            deadline = time.monotonic() + args.drain_timeout
            while time.monotonic() < deadline:
                counts = await asyncio.to_thread(queue_counts, url)
                if not counts.get("pending") and not counts.get("running"):
                    break
                await asyncio.sleep(2)
            else:
                stats.error("drain", f"the queue was not empty after {args.drain_timeout:g} s: {counts}")
            stats.marks["drain_end"] = time.monotonic()
            say(f"drained in {stats.marks['drain_end'] - stats.marks['drain_start']:.0f} s: {counts}")

            # Soak.
            stats.phase = "soak"
            stats.marks["soak_start"] = time.monotonic()
            imp = threading.Thread(target=importer, args=(soak_files, args.import_every, url, procs, stats,
                                                          stop_imports), daemon=True)
            imp.start()
            soak_end = time.monotonic() + args.soak_minutes * 60
            while time.monotonic() < soak_end:
                await asyncio.sleep(min(30.0, max(0.0, soak_end - time.monotonic())))
                if time.monotonic() < soak_end:
                    counts = await asyncio.to_thread(queue_counts, url)
                    say(f"soak: {len(stats.solve)} dashboard solves, {len(stats.imported)} imports, queue {counts}")
                if all(t.done() for t in tasks):
                    stats.error("soak", "every dashboard session stopped")
                    break
            stop_imports.set()
            imp.join(150)
            stats.marks["soak_end"] = time.monotonic()
            stats.phase = "end"
            stop_sessions.set()
            _done, pending = await asyncio.wait(tasks, timeout=180)
            for t in pending:
                stats.error("end", "a session did not stop within 180 s")
                t.cancel()
            for t in tasks:
                if t.done() and not t.cancelled() and t.exception():
                    stats.error("session", "".join(traceback.format_exception(t.exception()))[-500:])
            await browser.close()

        # The last imports: let the workers finish the queue (bounded), then stop them.
        deadline = time.monotonic() + args.final_drain
        while time.monotonic() < deadline:
            counts = queue_counts(url)
            if not counts.get("pending") and not counts.get("running"):
                break
            time.sleep(2)
        stop_workers.set()
        for t in workers:
            t.join(60)
    finally:
        stop_imports.set()
        stop_workers.set()
        procs.stop_all()
        stop_monitor.set()
        mon.join(10)
        log.close()
        text = log_path.read_text(errors="replace")
        tracebacks = text.count("Traceback (most recent call last)")
        if tracebacks:
            stats.error("dashboard log", f"{tracebacks} traceback(s); the last:\n"
                        + text[text.rfind("Traceback (most recent call last)"):][:1500])
        stats.marks["dashboard_log_lines"] = len(text.splitlines())
        keep = REPO / "test-output" / "reliability-streamlit.log"
        keep.parent.mkdir(exist_ok=True)
        shutil.copy(log_path, keep)


def report(args, stats: Stats, db: dict, load: tuple[tuple[float, ...], tuple[float, ...]], started: float) -> str:
    m = stats.marks
    lines: list[str] = []
    add = lines.append
    add("# Reliability run")
    add("")
    add(f"- when: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))} to {time.strftime('%H:%M:%S')} "
        f"({(time.time() - started) / 60:.1f} min); machine: {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average (1, 5, 15 min) {', '.join(f'{x:.1f}' for x in load[0])} "
        f"before, {', '.join(f'{x:.1f}' for x in load[1])} after")
    add(f"- setup: {args.sessions} dashboard sessions (headless Chromium, one Streamlit server), "
        f"{args.workers} `process-pending --lease {args.lease:g}` workers, one embedded PostgreSQL; "
        f"{args.runs} queued runs + the demo run; soak {args.soak_minutes:g} min with an import every "
        f"{args.import_every:g} s")
    drain = m.get("drain_end", 0) - m.get("drain_start", 0)
    soak = m.get("soak_end", 0) - m.get("soak_start", 0)
    add(f"- drain of the queue: {drain:.0f} s; soak: {soak / 60:.1f} min")
    add("")
    add("## Runs (counted in the database)")
    add("")
    expected = args.runs + 1 + len(stats.imported)
    add(f"- imported: {args.runs + 1} before the start, {len(stats.imported)} during the soak "
        f"(`allocator import`, {len(stats.import_seconds)} calls, p50 {pct(stats.import_seconds, 50):.2f} s, "
        f"max {max(stats.import_seconds, default=float('nan')):.2f} s); runs in the database: {db['runs_in_db']}")
    add(f"- **solved: {db['solved']} of {expected}**; by status at the end: {db['by_status']}")
    add(f"- **lost (imported, never completed): {len(db['lost'])}** {db['lost'][:10] if db['lost'] else ''}")
    add(f"- imported but not in the database: {len(db['missing'])}")
    add(f"- failed runs: {len(db['failed'])} {db['failed'][:5] if db['failed'] else ''}")
    dups = (len(db["double_complete"]) + len(db["replaced_on_complete"]) + len(db["allocation_mismatch"])
            + len(db["worker_double_complete"]))
    add(f"- **duplicates: {dups}** — runs with more than one completion record: {len(db['double_complete'])}; "
        f"completions that replaced allocations already written: {len(db['replaced_on_complete'])}; runs whose "
        f"allocation rows are not exactly one per worker of the run (none for a run not complete): "
        f"{len(db['allocation_mismatch'])}; runs reported complete by two worker processes: "
        f"{len(db['worker_double_complete'])}")
    add(f"- completion records: {db['complete_entries']}; allocation rows: {db['allocation_rows']}; other "
        f"publication-log entries: {db['other_log_entries'] or 'none'}")
    add(f"- runs claimed more than once (attempts > 1): {len(db['reclaimed'])} {db['reclaimed'][:5]}; "
        f"worker outcomes: {db['worker_outcomes']} ('lost' = the worker found its run taken over and wrote nothing); "
        f"worker processes started: {stats.worker_processes}, exit codes {dict(stats.worker_exits)}; "
        f"worker reports solved but the database does not have it complete: {len(db['worker_complete_not_in_db'])}")
    add("")
    add("## Dashboard (measured in the browser)")
    add("")
    add(f"- first page of each session (Runs): p50 {pct(stats.first_load, 50):.2f} s, max "
        f"{max(stats.first_load, default=float('nan')):.2f} s ({len(stats.first_load)} loads)")
    add("")
    add("| what | phase | count | p50 s | p95 s | max s |")
    add("|---|---|---:|---:|---:|---:|")

    def row(what: str, phase: str, xs: list[float]) -> None:
        add(f"| {what} | {phase} | {len(xs)} | {pct(xs, 50):.2f} | {pct(xs, 95):.2f} | {max(xs, default=float('nan')):.2f} |")

    for phase in ("drain", "soak", "all"):
        pg = [s for ph, _, s in stats.page if phase in (ph, "all")]
        row("page response (click → page interactive)", phase, pg)
    for phase in ("drain", "soak", "all"):
        row("solve (click → result shown)", phase, [s for ph, s in stats.solve if phase in (ph, "all")])
    for phase in ("drain", "soak", "all"):
        row("save (click → 'Saved')", phase, [s for ph, s in stats.save if phase in (ph, "all")])
    add("")
    add("| page | visits | p50 s | p95 s | max s |")
    add("|---|---:|---:|---:|---:|")
    by_page: dict[str, list[float]] = defaultdict(list)
    for _, title, s in stats.page:
        by_page[title].append(s)
    for title in ["Scenario", *PAGES]:
        xs = by_page.get(title, [])
        add(f"| {title} | {len(xs)} | {pct(xs, 50):.2f} | {pct(xs, 95):.2f} | {max(xs, default=float('nan')):.2f} |")
    add("")
    add(f"- Scenario page found with its rules reset to their lowest values (Solve greyed out): "
        f"{len(stats.resets)} times ({dict(Counter(stats.resets))}); each is also an error below")
    add(f"- scenarios saved: {db['scenarios_confirmed']} confirmed on the page, {db['scenarios_in_db']} in the "
        f"database; saved twice: {len(db['scenarios_doubled'])}; confirmed but missing: "
        f"{len(db['scenarios_missing'])}; in the database but not confirmed (a save whose toast was missed): "
        f"{len(db['scenarios_unconfirmed'])}")
    add("")
    add("## Peak memory (MB)")
    add("")
    for k, v in sorted(stats.peak_rss.items()):
        add(f"- {k}: {v:.0f}")
    add("")
    add(f"## Errors: {len(stats.errors)}")
    add("")
    for e in stats.errors[:40]:
        add(f"- {e}")
    if len(stats.errors) > 40:
        add(f"- … {len(stats.errors) - 40} more")
    notes = [s for s in stats.worker_stderr if s.strip()]
    add(f"- worker stderr lines other than the final count: {len(notes)}")
    for s in notes[:10]:
        add(f"  - {s[:300]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--soak-minutes", type=float, default=15.0)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--runs", type=int, default=100, help="runs queued before the start")
    ap.add_argument("--import-every", type=float, default=10.0, help="seconds between imports in the soak")
    ap.add_argument("--lease", type=float, default=30.0, help="the workers' lease, s (renewed every third)")
    ap.add_argument("--drain-timeout", type=float, default=1200.0, help="longest wait for the first drain, s")
    ap.add_argument("--final-drain", type=float, default=300.0, help="longest wait for the last imports, s")
    ap.add_argument("--idle-pause", type=float, default=10.0,
                    help="seconds before a worker slot starts process-pending again after it found the queue empty")
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--markdown", type=Path, help="also write the report here")
    args = ap.parse_args(argv)
    if not 1 <= args.sessions <= 16 or not 1 <= args.workers <= 8 or not 0 <= args.runs <= 1000:
        ap.error("sessions 1-16, workers 1-8, runs 0-1000")
    if not 0 <= args.soak_minutes <= 120:
        ap.error("--soak-minutes must be between 0 and 120")
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: install Debian's chromium package", file=sys.stderr)
        return 2

    def on_term(signum, frame):  # noqa: ANN001 - stop as on Ctrl-C: everything below is cleaned up
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    from allocator import service
    from allocator.db.embedded import create_database, start_server
    from allocator.db.migrate import migrate
    from allocator.demo import demo_snapshot
    from allocator.snapshot import RunSnapshot
    from allocator.store.postgres import PostgresStore

    started = time.time()
    load_before = os.getloadavg()
    stats = Stats()
    procs = Procs()
    base = Path(tempfile.mkdtemp(prefix="allocator-reliability-"))
    args.tmp = str(base / "work")
    Path(args.tmp).mkdir()
    server = None
    try:
        server = start_server(base / "pg", cleanup_mode="delete")
        url = create_database(server)
        migrate(url)
        pgdata = base / "pg" / "pgdata"
        say(f"PostgreSQL in {pgdata}; importing {args.runs} runs")
        store = PostgresStore(url)
        try:
            for i in range(args.runs):
                snap = RunSnapshot.parse(generated_run(i, args.seed))
                stats.imported.append(service.import_snapshot(store, snap, name=f"Load queue {i + 1:03d}",
                                                              source_file=f"load-{i + 1:03d}.json"))
            demo = RunSnapshot.parse(demo_snapshot())
            demo_id = service.import_snapshot(store, demo, name=DEMO_NAME, source_file="demo")
        finally:
            store.close()
        queued = list(stats.imported) + [demo_id]
        stats.imported.clear()
        # Files for the soak's imports: enough for one every import_every seconds, and no more.
        n_soak = int(args.soak_minutes * 60 // max(args.import_every, 1.0)) + 1
        soak_files = []
        for j in range(n_soak):
            path = Path(args.tmp) / f"soak-{j + 1:03d}.json"
            path.write_text(json.dumps(generated_run(args.runs + j, args.seed)), encoding="utf-8")
            soak_files.append(path)
        asyncio.run(drive(args, url, pgdata, stats, procs, soak_files))
        expected = queued + stats.imported
        db = db_figures(url, expected, stats.saved_names, stats.worker_lines)
    except KeyboardInterrupt:
        say("stopped: cleaning up")
        procs.stop_all()
        return 130
    finally:
        procs.stop_all()
        if server is not None:
            server.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    text = report(args, stats, db, (load_before, os.getloadavg()), started)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    bad = (len(db["lost"]) + len(db["missing"]) + len(db["double_complete"]) + len(db["replaced_on_complete"])
           + len(db["allocation_mismatch"]) + len(db["worker_double_complete"]) + len(stats.errors))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
