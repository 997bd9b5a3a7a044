"""The workbook's layout: its sheets and columns, the ``run`` sheet's keys, the README's words,
Excel's limits and the one error type, shared by the writer and the reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

from allocator.snapshot import FORMAT

PathOrBuffer = str | Path | IO[bytes]

# Excel's own limits: rows per sheet (one is the header) and characters per cell.
_MAX_ROWS = 1_048_576 - 1
_MAX_CELL = 32_767
# Past this many problems a planner needs the first ones fixed, not a longer list.
_MAX_MESSAGES = 100
# Integers beyond this lose digits as Excel numbers, so they are written as text.
_EXACT_INT = 2**53


class WorkbookError(ValueError):
    """A workbook that cannot be read (or written); ``messages`` lists every problem.

    Each message names the sheet and, where it applies, the row as Excel shows it.
    """

    def __init__(self, messages: list[str]):
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))




@dataclass(frozen=True)
class _Column:
    name: str
    # id | optional_id | text | optional_text | site | ids | optional_ids | whole | optional_whole |
    # bool | number | rank; the optional ones (and site) read a blank cell as "not given"
    kind: str
    required: bool
    width: int
    help: str
    # A blank cell leaves the key out of the entry (the business rules' keys, so that a run
    # without them reads back exactly as it was written).
    omit_blank: bool = False


@dataclass(frozen=True)
class _Sheet:
    name: str
    columns: tuple[_Column, ...]
    help: str
    unique: str | None = None  # a column whose values must differ from row to row
    # What to say when `unique` repeats (default: by the column, see reader._DUPLICATE_ADVICE).
    unique_advice: str | None = None
    # An empty sheet leaves its list out of the snapshot (business-rules.md: optional keys).
    optional_list: bool = False


_SHEETS: tuple[_Sheet, ...] = (
    _Sheet(
        "workers",
        (
            _Column("id", "id", True, 14, "A unique id for the worker, e.g. w001."),
            _Column("name", "text", False, 28, "The worker's name as planners know it."),
            _Column(
                "qualification_ids",
                "ids",
                False,
                48,
                "The worker's qualification tags, separated by commas, "
                "e.g. rural-ready, paediatrics.",
            ),
            _Column(
                "priority",
                "optional_whole",
                False,
                10,
                "Placed before others: 1 is placed first, then 2, and so on; workers left "
                "blank are placed last. Each group gets the best allocation it can before the "
                "next group is considered.",
                omit_blank=True,
            ),
        ),
        "One row per worker (junior doctor) taking part in this run.",
        unique="id",
    ),
    _Sheet(
        "job_lines",
        (
            _Column("id", "id", True, 14, "A unique id for the job line, e.g. j12."),
            _Column("name", "text", False, 52, "The line's name, e.g. Line 12: ED / Gen Med."),
            _Column("max_n_workers", "whole", True, 14, "How many workers the line takes at most."),
            _Column(
                "must_have_workers",
                "bool",
                False,
                18,
                "TRUE if the line must get at least one worker (nights, ED). Blank means FALSE.",
            ),
            _Column(
                "preferencer_ids",
                "ids",
                False,
                60,
                "The supervisors whose rankings of workers count for this line, "
                "separated by commas.",
            ),
            _Column(
                "site",
                "site",
                False,
                28,
                "The hospital (site) where the line's workers work, e.g. Orange Base Hospital. "
                "Linked workers are kept at one site and quotas can count sites. Blank: the "
                "line is a site of its own.",
                omit_blank=True,
            ),
        ),
        "One row per job line (a year-long rotation) in this run.",
        unique="id",
    ),
    _Sheet(
        "worker_preferences",
        (
            _Column("worker_id", "id", True, 14, "The worker who ranks."),
            _Column("job_line_id", "id", True, 14, "The job line they rank."),
            _Column(
                "rank",
                "rank",
                True,
                10,
                "1 is their first choice. Equal numbers are a tie; 1,1,3 and 1,1,2 and "
                "1.5,1.5,3 all mean the same.",
            ),
        ),
        "One row per job line a worker ranked. Lines a worker did not rank share the "
        "places after their last choice.",
    ),
    _Sheet(
        "preferencer_preferences",
        (
            _Column("preferencer_id", "id", True, 40, "The supervisor who ranks."),
            _Column("worker_id", "id", True, 14, "The worker they rank."),
            _Column("rank", "rank", True, 10, "1 is their first choice; ties as for workers."),
        ),
        "One row per worker a supervisor (a preferencer) ranked. A supervisor's rankings "
        "count on the job lines that name them in preferencer_ids; rankings by a supervisor "
        "no line names are allowed and have no effect.",
    ),
    _Sheet(
        "eligibility",
        (
            _Column("job_line_id", "id", True, 14, "The job line these rules are for."),
            _Column(
                "included_worker_ids",
                "ids",
                False,
                30,
                "Workers always allowed on the line, whatever their tags.",
            ),
            _Column("excluded_worker_ids", "ids", False, 30, "Workers never allowed on the line."),
            _Column(
                "included_qualification_ids",
                "ids",
                False,
                30,
                "If filled in, only workers with at least one of these tags are allowed.",
            ),
            _Column(
                "excluded_qualification_ids",
                "ids",
                False,
                30,
                "Workers with any of these tags are not allowed.",
            ),
        ),
        "At most one row per job line; a line without a row admits everyone. The rules "
        "apply in this order, first match wins: included worker (allowed), excluded worker "
        "(not allowed), excluded tag (not allowed), included tag (allowed), and then: not "
        "allowed if the line lists included tags, allowed otherwise. Lists are separated "
        "by commas.",
        unique="job_line_id",
    ),
    _Sheet(
        "weightings",
        (
            _Column("worker_id", "id", True, 14, "The worker."),
            _Column(
                "job_line_id",
                "optional_id",
                False,
                14,
                "The job line; leave blank for a weighting on every line.",
            ),
            _Column(
                "value",
                "number",
                True,
                10,
                "Positive discourages the placement, negative favours it (e.g. -2 for a "
                "family reason to stay near a site).",
            ),
        ),
        "Adjustments on the organisation's side of the score. Rows for the same worker "
        "and line add up.",
    ),
    _Sheet(
        "pins",
        (
            _Column("worker_id", "id", True, 14, "The worker."),
            _Column("job_line_id", "id", True, 14, "The job line they must get."),
        ),
        "Planner decisions made in advance: the worker gets this line. At most one per "
        "worker, and the worker must be allowed on the line.",
        unique="worker_id",
    ),
    _Sheet(
        "forbids",
        (
            _Column("worker_id", "id", True, 14, "The worker."),
            _Column("job_line_id", "id", True, 14, "The job line they must not get."),
        ),
        "Planner decisions made in advance: the worker does not get this line.",
    ),
    _Sheet(
        "linked_workers",
        (
            _Column("id", "id", True, 16, "A name for the link, e.g. couple-7."),
            _Column(
                "worker_ids",
                "ids",
                True,
                40,
                "The 2 to 4 workers who must work at the same site, separated by commas.",
            ),
        ),
        "Workers who must be placed at the same site (a couple, for example): all of them get "
        "job lines of one site. A worker is in at most one link.",
        unique="id",
        optional_list=True,
    ),
    _Sheet(
        "quotas",
        (
            _Column("id", "id", True, 16, "A name for the quota, e.g. rural-min."),
            _Column(
                "sites",
                "optional_ids",
                False,
                40,
                "The sites it counts, separated by commas (fill in this or job_line_ids, not both).",
                omit_blank=True,
            ),
            _Column(
                "job_line_ids",
                "optional_ids",
                False,
                30,
                "The job lines it counts, separated by commas (fill in this or sites, not both).",
                omit_blank=True,
            ),
            _Column(
                "qualification_id",
                "optional_id",
                False,
                18,
                "Count only workers with this tag; blank counts every worker.",
                omit_blank=True,
            ),
            _Column(
                "min_workers",
                "optional_whole",
                False,
                12,
                "At least this many workers on those lines (blank means 0).",
                omit_blank=True,
            ),
            _Column(
                "max_workers",
                "optional_whole",
                False,
                12,
                "At most this many workers on those lines (blank means no maximum).",
                omit_blank=True,
            ),
        ),
        "Minimums and maximums of workers on a group of job lines, e.g. at least 12 workers "
        "at the rural hospitals, or at most 2 ED-ready workers on lines j1 and j2.",
        unique="id",
        optional_list=True,
    ),
    _Sheet(
        "previous_allocations",
        (
            _Column("worker_id", "id", True, 14, "A worker already told where they go."),
            _Column("job_line_id", "id", True, 14, "The job line they were given."),
        ),
        "The allocation published earlier, for re-solving after a withdrawal or a late "
        "arrival: with fewest_moves TRUE on the run sheet, as few of these workers as possible "
        "are moved. One row per worker.",
        unique="worker_id",
        unique_advice="a worker has one previous job line.",
        optional_list=True,
    ),
)
_BY_NAME = {s.name: s for s in _SHEETS}

_SETTING_HELP = {
    "preferencer_weight": "Share of the score given to supervisors' rankings and "
    "weightings, from 0 to 1 (default 0.3).",
    "preference_power": "Above 1, low choices hurt more (default 1).",
    "max_seconds": "Time limit of a solve in seconds (default 60).",
    "rng_seed": "Picks among equally good allocations (default 1234).",
    "allow_worker_preference_ties": "FALSE makes equal worker ranks an error (default TRUE).",
    "stability": "TRUE: no worker is left wanting a line that would also rather have them "
    "(default FALSE).",
    "fewest_moves": "TRUE: first move as few workers of the previous allocation as possible "
    "(default FALSE).",
}
_SETTING_KIND = {
    "preferencer_weight": "number",
    "preference_power": "number",
    "max_seconds": "number",
    "rng_seed": "whole",
    "allow_worker_preference_ties": "bool",
    "stability": "bool",
    "fewest_moves": "bool",
}
_RUN_KEYS = {
    "format": f"The snapshot format; leave as {FORMAT}.",
    "id": "The run's id, e.g. 2027-intake.",
    "name": "The run's name, e.g. 2027 PGY1 intake.",
    **_SETTING_HELP,
}
_SHEET_ORDER = ("README", "run", *(s.name for s in _SHEETS))

_README_INTRO = (
    "How to fill in this workbook",
    "",
    "This workbook holds one allocation run: who takes part, what they asked for, and the "
    "rules. Each sheet is one list. The first row of a sheet holds the column names; "
    "keep them as they are. Blank rows are skipped.",
    "Ids are short codes (w001, j12) that must be unique on their sheet; the other "
    "sheets refer to workers and job lines by these ids. Where a cell holds several ids, "
    "separate them with commas (so an id itself cannot contain a comma). Spaces around "
    "ids are ignored.",
    "A column whose name starts with # is a note column and is not read, as is this README sheet.",
    "",
)


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= _MAX_MESSAGES:
        return problems
    more = len(problems) - _MAX_MESSAGES
    return [*problems[:_MAX_MESSAGES], f"... and {more} more problems."]


def _site_key(site: str) -> str:
    """A site name with the spaces around its commas dropped (how a comma-separated cell
    of sites is compared with the sites of the job lines)."""
    return ",".join(part.strip() for part in site.split(","))


def group_site_names(parts: list[str], known_sites) -> list[str]:
    """A quota's cell of sites, split at its commas into ``parts``, as site names.

    A site may itself contain a comma ("St Vincent's Hospital, Sydney"): runs of parts that
    spell a site of the job lines (the longest first) are put back together; every other
    part is a site name of its own (the snapshot check names one no line has).
    """
    by_key: dict[str, str] = {}
    for site in sorted(known_sites):
        by_key.setdefault(_site_key(site), site)
    out: list[str] = []
    i = 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            name = by_key.get(",".join(parts[i:j])) if j > i + 1 else None
            if name is not None:
                out.append(name)
                i = j
                break
        else:
            out.append(parts[i])
            i += 1
    return out
