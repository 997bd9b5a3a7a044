"""Business rules in a real browser: a scenario edits a link and a quota, solves, and Results shows them.

- ``test_a_link_and_a_quota_edited_in_the_browser_show_on_results``: on the demo run, add a
  link of two workers (named, then picked in the grid's drop-downs) and a
  quota of at least two workers on one job line, leave the page and come back (both kept),
  solve, and see the link's line and the quota's count, met, on Results.

The two workers and the line are chosen here from the demo run so that the link can hold (both
eligible for a line with room for two), and the scenario is solved again in the test process:
the page must show what the engine gives.
"""

from __future__ import annotations

import pytest

from allocator.demo import demo_snapshot
from allocator.engine import solve
from allocator.problem import ProblemData
from allocator.scenario import apply
from allocator.snapshot import RunSnapshot
from tests.e2e.dashboard_harness import (
    click_solve,
    exceptions,
    full_page_screenshot,
    grid_heads,
    grid_rows,
    open_dashboard,
    open_page,
    select_grid_cell,
    set_text,
    table_after,
    type_into_cell,
    wait_idle,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def choose(run: RunSnapshot) -> tuple[str, str, str, dict]:
    """Two free workers who may both take a line with two places or more, that line, the overrides."""
    p = ProblemData.from_snapshot(run)
    busy = {p.worker_id for p in run.pins} | {w for k in run.linked_workers for w in k.worker_ids}
    free = [s for s in range(p.n_workers) if p.worker_ids[s] not in busy]
    for j in range(p.n_lines):
        if p.capacity[j] < 2:
            continue
        who = [s for s in free if p.allowed[s, j]]
        if len(who) < 2:
            continue
        a, b = p.worker_ids[who[0]], p.worker_ids[who[1]]
        line = p.line_ids[j]
        ov = {"linked_workers": [*({"id": k.id, "worker_ids": k.worker_ids} for k in run.linked_workers),
                                 {"id": "LINK", "worker_ids": [a, b]}],
              "quotas": [*(q.model_dump() for q in run.quotas),
                         {"id": "QUOTA", "job_line_ids": [line], "min_workers": 2}]}
        if solve(apply(run, {}, ov)).to_dict()["status"] == "optimal":
            return a, b, line, ov
    raise AssertionError("the demo run has no line two free workers may share")


def grid(page, key: str):
    # The editor's key carries a generation once it has been seeded again (sc_links_2).
    return page.locator(f'[class*="st-key-{key}"] [data-testid="stDataFrame"]').first


def add_row(page, key: str, row: int, name: str, tries: int = 3) -> None:
    """Type a name into the first cell of the grid's last, empty line: that adds the row."""
    def added() -> bool:
        rows = grid_rows(grid(page, key))
        return len(rows) > row and rows[row][grid_heads(grid(page, key))[0]] == name

    for _ in range(tries):
        if added():  # a slow page may show the first attempt's name only now: never type it twice
            return
        g = grid(page, key)
        type_into_cell(page, g, grid_heads(g)[0], row, name, then="Tab")
        try:
            eventually(added, timeout=10.0)
            return
        except (AssertionError, IndexError, KeyError):
            continue  # the keys were lost on the way: type the name again
    raise AssertionError(f"no row {name!r} added: {grid_rows(grid(page, key))}")


def pick(page, key: str, col: str, row: int, text: str, shown: tuple[str, ...], *, many: bool = False,
         tries: int = 3) -> None:
    """Open a drop-down cell, type to filter its options, take the first; until the cell shows ``shown``.

    Typing into the canvas grid can lose keystrokes when the browser is slow to open the cell's
    editor; what the page does with a value that arrived is what is tested, so a lost one is
    typed again.
    """
    for _ in range(tries):
        pick_once(page, grid(page, key), col, row, text, many=many)
        try:
            eventually(lambda: grid_rows(grid(page, key))[row].get(col) in shown, timeout=6.0)
            return
        except (AssertionError, IndexError):
            continue
    raise AssertionError(f"{col} of row {row + 1} does not show {shown!r}: {grid_rows(grid(page, key))}")


def pick_once(page, g, col: str, row: int, text: str, *, many: bool = False) -> None:
    select_grid_cell(page, g, col, row)
    page.keyboard.press("Enter")  # opens the cell's editor (typing into a closed cell drops keys)
    page.wait_for_timeout(400)
    page.keyboard.type(text, delay=25)
    page.wait_for_timeout(500)
    if many:  # a multi-choice cell stays open for more after Enter takes an option
        page.keyboard.press("Enter")
        page.wait_for_timeout(400)
    # Tab takes the option and moves right: Enter would move down, into a new row at the end.
    page.keyboard.press("Tab")
    page.wait_for_timeout(800)  # the editor sends its edits after a short debounce
    wait_idle(page)


def type_number(page, key: str, col: str, row: int, text: str, tries: int = 3) -> None:
    """Type a number into a cell until the grid shows it (a lost keystroke is typed again,
    as in :func:`pick`: what the page does with a value that arrived is what is tested)."""
    for _ in range(tries):
        type_into_cell(page, grid(page, key), col, row, text, then="Tab")
        try:
            eventually(lambda: grid_rows(grid(page, key))[row].get(col) == text, timeout=6.0)
            return
        except (AssertionError, IndexError):
            continue
    raise AssertionError(f"{col} of row {row + 1} does not show {text!r}: {grid_rows(grid(page, key))}")


def eventually(check, timeout: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the page did not get there in time")
        time.sleep(0.25)


def test_a_link_and_a_quota_edited_in_the_browser_show_on_results(page, dashboard):
    run = RunSnapshot.parse(demo_snapshot())
    a, b, line, _ = choose(run)
    line_name = next(j.name or j.id for j in run.job_lines if j.id == line)
    site = next(j.site for j in run.job_lines if j.id == line)
    line_label = f"{line_name} · {site or 'its own site'}" if any(j.site for j in run.job_lines) else line_name
    n_links, n_quotas = len(run.linked_workers), len(run.quotas)

    open_dashboard(page, dashboard.url)
    open_page(page, "Scenario")
    set_text(page, "Scenario name", "Rules e2e")
    page.get_by_role("tab", name="Linked workers (couples)").click()
    # A click on the grid's empty last line adds the link, named by the page (the next free
    # couple-N); its first worker is then picked in it.
    pick(page, "sc_links", "Worker 1", n_links, f"({a})", (a,))
    pick(page, "sc_links", "Worker 2", n_links, f"({b})", (b,))
    link_name = f"couple-{n_links + 1}"
    eventually(lambda: grid_rows(grid(page, "sc_links"))[n_links][grid_heads(grid(page, "sc_links"))[0]] == link_name)
    # The keys went where they were meant to: the demo's own links are as they were.
    assert [r["Link name"] for r in grid_rows(grid(page, "sc_links"))[:n_links]] == [k.id for k in run.linked_workers]

    page.get_by_role("tab", name="Quotas").click()
    add_row(page, "sc_quotas", n_quotas, "e2e-quota")
    # The cell reads the line's id or its name (with its site, when lines have one).
    pick(page, "sc_quotas", "Job lines", n_quotas, line_name, (line, line_name, line_label), many=True)
    type_number(page, "sc_quotas", "At least", n_quotas, "2")
    eventually(lambda: any(r.get("Job lines") in (line, line_name, line_label) and r.get("At least") == "2"
                           for r in grid_rows(grid(page, "sc_quotas"))))
    quota_name = "e2e-quota"
    assert [r["Quota name"] for r in grid_rows(grid(page, "sc_quotas"))[:n_quotas]] == [q.id for q in run.quotas]
    main = page.locator('[data-testid="stMain"]')
    assert "cannot be solved as it stands" not in main.inner_text()
    full_page_screenshot(page, "rules-01-scenario-quota")

    # Leave and come back: both edits kept.
    open_page(page, "Eligibility")
    open_page(page, "Scenario")
    page.get_by_role("tab", name="Linked workers (couples)").click()
    assert any(r.get("Link name") == link_name and r.get("Worker 1") == a for r in grid_rows(grid(page, "sc_links")))
    page.get_by_role("tab", name="Quotas").click()
    assert any(r.get("Quota name") == quota_name for r in grid_rows(grid(page, "sc_quotas")))

    # What the engine gives for this scenario, solved here.
    expected = solve(apply(run, {}, {
        "linked_workers": [*({"id": k.id, "worker_ids": k.worker_ids} for k in run.linked_workers),
                           {"id": link_name, "worker_ids": [a, b]}],
        "quotas": [*(q.model_dump() for q in run.quotas),
                   {"id": quota_name, "job_line_ids": [line], "min_workers": 2}],
    })).to_dict()
    got = {x["worker_id"]: x["job_line_id"] for x in expected["allocations"]}
    count = next(q["count"] for q in expected["metrics"]["quotas"] if q["id"] == quota_name)

    click_solve(page, "Rules e2e")
    open_page(page, "Results")
    assert not exceptions(page)
    link_rows = grid_rows(table_after(page, "Linked workers"))
    mine = [r for r in link_rows if r["Link"] == link_name]
    names = {j.id: j.name or j.id for j in run.job_lines}
    assert [r["Job line"] for r in mine] == [names[got[a]], names[got[b]]]
    quota_rows = grid_rows(table_after(page, "Quotas"))
    q = next(r for r in quota_rows if r["Quota"] == quota_name)
    assert (q["Workers"], q["At least"], q["Met"]) == (str(count), "2", "met")
    full_page_screenshot(page, "rules-02-results")
    assert not page.js_errors, page.js_errors
