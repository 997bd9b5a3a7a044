"""How fast the dashboard feels, measured in a real headless Chromium (run by hand, not a test).

Starts ``streamlit run app/streamlit_app.py`` on a free port with a fresh embedded database
(the demo run), opens it in Debian's Chromium through Playwright, then:

1. **Solve**: on the Scenario page, sets the supervisor voice and presses Solve, timing from
   the click until the page says the scenario is solved (the result is shown). Several
   voices; the last two are saved, so Compare and Publish have something to show.
2. **Pages**: clicks each page in the sidebar, timing from the click until the page is
   interactive: its main content is there, every chart has drawn and Streamlit has finished
   running the script. Every page is opened ``--rounds`` times; the first round (cold:
   first import, first read of each cache) is reported apart from the rest (warm).

Targets (issue 4): each page interactive within 1 s; Solve shows its result within 2 s.
Timings include Playwright's round trips (a few ms each). Figures go to
``benchmarks/DASHBOARD_RESULTS.md`` by hand.

    .venv/bin/python benchmarks/dashboard_speed.py [--rounds 5] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from dashboard_harness import (  # noqa: E402
    APP_IDLE,
    CHROMIUM,
    EXCEPTION,
    charts_rendered,
    click_solve,
    exceptions,
    go_to,
    keyed,
    launch_browser,
    open_dashboard,
    open_page,
    running_dashboard,
    set_slider,
    set_text,
    wait_idle,
)

PAGE_TARGET = 1.0  # s
SOLVE_TARGET = 2.0  # s

#: Page title in the sidebar -> a CSS selector for the page's main content.
MAIN_CONTENT: dict[str, str] = {
    "Runs": '[data-testid="stMain"] h2:has-text("Data health")',
    "Scenario": ".st-key-sc_solve button",
    "Results": '.st-key-res_rank_chart [data-testid="stPlotlyChart"] .main-svg',
    "Eligibility": ".st-key-el_heatmap .main-svg",
    "Compare": '[data-testid="stMain"] h2:has-text("Who moved")',
    "Publish": '[data-testid="stMain"] h2:has-text("Publication history")',
}

#: (scenario name, supervisor voice %, save it?) — distinct voices, so nothing is reused.
SOLVES = [
    ("Speed 20", 20, False),
    ("Speed 40", 40, False),
    ("Speed 70", 70, False),
    ("Speed A 50", 50, True),
    ("Speed B 10", 10, True),
]


def timed(action: Callable[[], None], until: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    until()
    return time.perf_counter() - started


WATCH_SCRIPT = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    window.__scriptStates = [];
    new MutationObserver(() => window.__scriptStates.push(
        [performance.now(), app.getAttribute('data-test-script-state')]
    )).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def page_interactive(page, title: str) -> tuple[float, float | None]:
    """Seconds from clicking ``title`` in the sidebar until the page is interactive.

    Also returns when the server finished running the page script (the last switch of
    Streamlit's script state to ``notRunning``), so the rest is the browser drawing.
    """
    t0 = page.evaluate("() => performance.now()")

    def until() -> None:
        page.wait_for_function(
            """t => { const a = Array.from(document.querySelectorAll('[data-testid="stSidebarNav"] a'))
                       .find(a => a.innerText.trim().endsWith(t));
                      return a && location.href === a.href; }""",
            arg=title,
        )
        page.locator(MAIN_CONTENT[title]).first.wait_for(state="visible", timeout=30_000)
        page.wait_for_selector(APP_IDLE, timeout=30_000)
        charts_rendered(page)

    total = timed(lambda: go_to(page, title), until)
    done = page.evaluate(
        """t0 => { const s = (window.__scriptStates || []).filter(x => x[0] >= t0 && x[1] === 'notRunning');
                   return s.length ? s[s.length - 1][0] - t0 : null; }""",
        t0,
    )
    return total, None if done is None else done / 1000.0


def save(page, name: str) -> None:
    keyed(page, "sc_save").get_by_role("button").click()
    page.locator('[data-testid="stToast"]').filter(has_text="Saved").filter(has_text=name).first.wait_for(
        timeout=15_000)
    wait_idle(page)


def fmt(x: float) -> str:
    return f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="times each page is opened (first = cold)")
    ap.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    args = ap.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: install Debian's chromium package", file=sys.stderr)
        return 2

    from playwright.sync_api import sync_playwright

    log = REPO / "test-output" / "dashboard-speed-streamlit.log"
    load_before = os.getloadavg()
    started = time.perf_counter()
    with running_dashboard(log) as dash, sync_playwright() as p:
        healthy = time.perf_counter() - started
        browser = launch_browser(p)
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        first_load = timed(lambda: open_dashboard(page, dash.url), lambda: charts_rendered(page))

        solves: list[tuple[str, int, float, str]] = []
        open_page(page, "Scenario")
        for name, alpha, keep in SOLVES:
            set_text(page, "Scenario name", name)
            set_slider(page, "sc_alpha", alpha)
            secs = click_solve(page, name)
            label = page.get_by_text(re.compile(rf"'{re.escape(name)}' solved in")).first.inner_text()
            m = re.search(r"solved in ([\d.]+) s", label)
            solves.append((name, alpha, secs, m.group(1) if m else "?"))
            wait_idle(page)
            if keep:
                save(page, name)

        times: dict[str, list[float]] = {t: [] for t in MAIN_CONTENT}
        script: dict[str, list[float]] = {t: [] for t in MAIN_CONTENT}
        order = list(MAIN_CONTENT)
        page.evaluate(WATCH_SCRIPT)
        for _ in range(args.rounds):
            for title in order:
                total, done = page_interactive(page, title)
                times[title].append(total)
                if done is not None:
                    script[title].append(done)
                if page.locator(EXCEPTION).count():
                    raise SystemExit(f"{title}: the page shows an exception:\n" + "\n".join(exceptions(page)))
        browser.close()

    lines = []
    load_after = os.getloadavg()
    lines.append(f"Machine: {os.cpu_count()} cores · Python {platform.python_version()} · "
                 f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    lines.append(f"Server healthy after {healthy:.1f} s; first page (starts PostgreSQL, loads the demo run) "
                 f"interactive after {first_load:.1f} s")
    lines.append("")
    lines.append(f"| Page | cold (1st visit) s | warm median s | warm max s | warm median, script done s | "
                 f"target ≤ {PAGE_TARGET:.0f} s |")
    lines.append("|---|---:|---:|---:|---:|---|")
    for title in order:
        cold, warm = times[title][0], times[title][1:] or times[title]
        done = script[title][1:] or script[title]
        ok = max(warm) <= PAGE_TARGET
        lines.append(f"| {title} | {fmt(cold)} | {fmt(statistics.median(warm))} | {fmt(max(warm))} | "
                     f"{fmt(statistics.median(done)) if done else '?'} | "
                     f"{'met' if ok else 'MISSED'}{'' if cold <= PAGE_TARGET else ' (cold missed)'} |")
    lines.append("")
    lines.append(f"| Solve | supervisor voice | click → result shown, s | engine, as the page says, s | "
                 f"target ≤ {SOLVE_TARGET:.0f} s |")
    lines.append("|---|---:|---:|---:|---|")
    for name, alpha, secs, engine in solves:
        lines.append(f"| {name} | {alpha} % | {fmt(secs)} | {engine} | {'met' if secs <= SOLVE_TARGET else 'MISSED'} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
