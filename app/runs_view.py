"""What the Runs page shows, as plain functions: the runs table, where a run came from, the
change log and the data-health tables. The page draws them; tests call them directly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import pandas as pd

from allocator import service
from allocator.health import HealthReport
from allocator.service import RunChange, RunSummary
from allocator.snapshot import RunSnapshot


def when(ts: datetime | None, never: str = "—") -> str:
    """A timestamp as planners read it, in the dashboard's local time."""
    return ts.astimezone().strftime("%d %b %Y, %H:%M") if ts else never


def provenance(r: RunSummary) -> str:
    """When and from what file the run was imported, in one phrase."""
    source = f"from {r.source_file}" if r.source_file else "(no file name recorded)"
    return f"Imported {when(r.imported_at)} {source}"


def runs_frame(runs: Sequence[RunSummary], current_id: str | None) -> pd.DataFrame:
    """One row per run: enough to tell two runs with the same name apart (when imported,
    from what file, how big, its id)."""
    return pd.DataFrame(
        [
            {
                "Run": r.name or r.id,
                "Imported": r.imported_at,
                "From file": r.source_file or "—",
                "Workers": r.n_workers,
                "Job lines": r.n_job_lines,
                "Changed since import": r.n_changes,
                "Last scenario saved": when(r.last_scenario_saved_at, "none saved yet"),
                "Published": r.published,
                "Run id": r.id[:8],
                "Current": r.id == current_id,
            }
            for r in runs
        ],
        # The id beside the name: at the far right it scrolled out of view, and with it the
        # one thing that tells apart two runs of the same name imported from the same file.
        # Which run is current and whether it is published next: they were cut off at the right.
        columns=["Run", "Run id", "Current", "Published", "Workers", "Job lines", "Imported", "From file",
                 "Changed since import", "Last scenario saved"],
    )


#: The runs table's column widths (px): together with the row picker they fit the page beside
#: the sidebar (about 880 px), so no column hides behind a scroll bar.
RUNS_WIDTHS = {"Run": 150, "Run id": 70, "Current": 60, "Published": 70, "Workers": 60, "Job lines": 65,
               "Imported": 115, "From file": 80, "Changed since import": 65, "Last scenario saved": 110}


def places_problem(value: object, line: str) -> str | None:
    """Why the places typed for a line on the Runs page cannot be saved, or ``None``.

    The box has no bounds of its own: a bounded box keeps its last good value when -1 is
    typed, and Save would then write that value while the box shows -1.
    """
    from allocator.snapshot import MAX_PLACES

    if value is None or (isinstance(value, str) and not value.strip()):
        return f"Places of {line}: fill it in (a whole number, 0 or more). Nothing was changed."
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        x = float("nan")
    if not (x == x) or x < 0 or not x.is_integer():
        typed = f"{x:g}" if x == x else value  # -3, not -3.0: as the box shows it
        return f"Places of {line}: must be a whole number, 0 or more (you typed {typed}). Nothing was changed."
    if x > MAX_PLACES:
        return f"Places of {line}: must be at most {MAX_PLACES:,} (you typed {int(x)}). Nothing was changed."
    return None


def change_log_frame(changes: Sequence[RunChange], who: Callable[[str | None], str] = lambda x: x or "") -> pd.DataFrame:
    """The run's change log, newest first: when, who, what and why."""
    return pd.DataFrame(
        [
            {"When": when(c.changed_at), "Who": who(c.changed_by), "What": service.change_words(c), "Why": c.reason}
            for c in reversed(list(changes))
        ],
        columns=["When", "Who", "What", "Why"],
    )


def blocked_ranks_frame(report: HealthReport) -> pd.DataFrame:
    """Workers who ranked lines they may not take: how many, and whether their first choice is one."""
    rows = [
        {
            "Worker": d.name,
            "Worker id": d.worker_id,
            "Lines ranked": d.ranked,
            "Ranked lines they may not take": d.ranked_blocked,
            "First choice among them": d.first_choice_blocked,
        }
        for d in report.depth
        if d.ranked_blocked
    ]
    frame = pd.DataFrame(rows, columns=["Worker", "Worker id", "Lines ranked", "Ranked lines they may not take",
                                        "First choice among them"])
    return frame.sort_values(["First choice among them", "Ranked lines they may not take", "Worker id"],
                             ascending=[False, False, True], ignore_index=True)


def worker_labels(snapshot: RunSnapshot) -> dict[str, str]:
    """Each worker of the run as a picker names them: name and id."""
    return {w.id: f"{w.name} ({w.id})" if w.name and w.name != w.id else w.id for w in snapshot.workers}


def line_labels(snapshot: RunSnapshot) -> dict[str, str]:
    """Each job line as a picker names it: name and id."""
    return {j.id: f"{j.name} ({j.id})" if j.name and j.name != j.id else j.id for j in snapshot.job_lines}


def known_tags(snapshot: RunSnapshot) -> list[str]:
    """Every qualification tag the run's workers carry or its rules name, sorted."""
    tags = {t for w in snapshot.workers for t in w.qualification_ids}
    tags |= {t for e in snapshot.eligibility for t in (*e.included_qualification_ids, *e.excluded_qualification_ids)}
    return sorted(tags)


_CHECK_ORDER = {"cannot be filled": 0, "short of candidates": 1, "few candidates": 2, "ok": 3}


def line_pools_frame(report: HealthReport, snapshot: RunSnapshot) -> pd.DataFrame:
    """Each line's places against the workers who may take it, problems first.

    With a Site column when the run's lines name sites (a line without one is a site of its
    own), so a planner sees where a short line is, as on every other page.
    """
    from editor import OWN_SITE

    site = {j.id: j.site for j in snapshot.job_lines}
    with_sites = any(site.values())
    rows = []
    for x in report.lines:
        row = {
            "Check": ("cannot be filled" if x.cannot_fill else "short of candidates" if x.short_of_places
                      else "few candidates" if x.few_candidates else "ok"),
            "Job line": x.name,
        }
        if with_sites:
            row["Site"] = site.get(x.job_line_id) or OWN_SITE
        row |= {"Places": x.places, "May take it": x.pool, "Must be filled": x.must_be_filled}
        rows.append(row)
    cols = ["Check", "Job line", *(["Site"] if with_sites else []), "Places", "May take it", "Must be filled"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["Check", "May take it"], key=lambda c: c.map(_CHECK_ORDER) if c.name == "Check" else c,
                          kind="stable").reset_index(drop=True)
