"""Every worker's statement at once: the planner's words, one PDF, a ZIP, one JSON or XLSX table.

A statement says, for one worker (doctor): the line they got and their rank for it ("not
ranked" for a line they did not rank, never a number), what that pair costs and why (the
cost breakdown of allocation-model.md), and each line they ranked higher with its one reason
and, when it could be granted, its price in words:

    to give Dr Patel Line 9, Dr Lee would move from their 1st to their 3rd choice (Line 11);
    total dissatisfaction +3.25 (doctors' side +1.4, supervisors' side +1.85)

The numbers come from :func:`allocator.explain.explain_all` (the optimality certificate
without stability; pinned re-solves under a time budget with it). Plain functions, so the
dashboard and the command line call the same code:

* :func:`build_statements` -> list of :class:`Statement`
* :func:`statements_pdf` (one page per worker), :func:`statements_zip` (a PDF, a text and a
  JSON file per worker), :func:`statements_table` rows, :func:`statements_json`,
  :func:`statements_xlsx`.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import textwrap
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from allocator.explain import explain_all
from allocator.kpis import ordinal
from allocator.problem import ProblemData

if TYPE_CHECKING:
    from allocator.result import Result
    from allocator.solvers.base import SolveOptions

TABLE_COLUMNS = [
    "worker_id", "worker", "job_line_id", "job_line", "rank", "higher_choice_id", "higher_choice",
    "higher_choice_rank", "reason", "price", "price_worker_side", "price_preferencer_side",
    "proven", "who_would_move", "explanation",
]

# A Unicode font when the system has one (names from anywhere); otherwise the PDF core font,
# with characters it lacks replaced.
_FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
    Path("/Library/Fonts/DejaVuSans.ttf"),
)


@dataclass(frozen=True)
class Statement:
    """One worker's statement: a title, lines of text, and the explanation it was made from."""

    worker_id: str
    title: str
    lines: list[str]
    explanation: dict[str, Any]

    def text(self) -> str:
        return self.title + "\n\n" + "\n".join(self.lines) + "\n"


# -- words ---------------------------------------------------------------------------------------


def choice_number(problem: ProblemData, s: int, j: int) -> int:
    """The worker's choice number for a line (1 = their first tie group); 0 when not ranked."""
    if not problem.worker_ranked[s, j]:
        return 0
    better = problem.worker_ranked[s] & (problem.worker_rank[s] < problem.worker_rank[s, j])
    return int(better.sum()) + 1


def choice_words(problem: ProblemData, s: int, j: int) -> str:
    """"their 3rd choice", or "a line they did not rank"."""
    k = choice_number(problem, s, j)
    return f"their {ordinal(k)} choice" if k else "a line they did not rank"


def rank_words(problem: ProblemData, s: int, j: int) -> str:
    """"rank 2.5" or "not ranked": never a number for a line they did not rank."""
    if not problem.worker_ranked[s, j]:
        return "not ranked"
    r = float(problem.worker_rank[s, j])
    return f"rank {r:g}"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.6g}"


def _name(problem: ProblemData, s: int) -> str:
    return problem.worker_names[s]


def _line(problem: ProblemData, j: int) -> str:
    return problem.line_names[j]


def price_words(problem: ProblemData, worker_id: str, entry: dict[str, Any]) -> str:
    """One higher choice in the planner's words (any reason)."""
    s = problem.worker_index[worker_id]
    p = problem.line_index[entry["job_line_id"]]
    who, line = _name(problem, s), _line(problem, p)
    reason = entry["reason"]
    if reason == "ineligible":
        return f"{line}: not eligible ({entry['message']})."
    if reason in ("forbidden", "pinned"):
        return f"{line}: {entry['message']}."
    if reason == "impossible":
        return f"{line}: cannot be given to {who}; {entry['message'].removeprefix('it cannot be granted: ')}"
    if entry.get("price") is None:
        return f"{line}: {entry.get('message', 'not priced')}."
    moves = entry.get("moves") or []
    parts = []
    for mv in moves:
        t = problem.worker_index[mv["worker_id"]]
        fr, to = problem.line_index[mv["from"]], problem.line_index[mv["to"]]
        parts.append(
            f"{_name(problem, t)} would move from {choice_words(problem, t, fr)} ({_line(problem, fr)}) "
            f"to {choice_words(problem, t, to)} ({_line(problem, to)})"
        )
    if parts:
        head = f"to give {who} {line}, " + "; ".join(parts)
    else:
        head = f"to give {who} {line}, nobody else would move (it has a free place)"
    price = float(entry["price"])
    if "price_levels" in entry:
        tail = _level_price_words(entry)
    elif price == 0.0:
        tail = "at no extra cost: an equally good allocation, decided by the tie-break seed"
    else:
        tail = (
            f"total dissatisfaction {_num(price)} (doctors' side {_num(entry.get('price_worker_side'))}, "
            f"supervisors' side {_num(entry.get('price_preferencer_side'))})"
        )
    proven = "" if entry.get("proven", True) else " (not proven optimal within the time limit)"
    return f"{head}; {tail}{proven}."


def _level_price_words(entry: dict[str, Any]) -> str:
    """A tiered or fewest-moves run's price: the first level of its order that would get worse.

    The total alone can mislead there: granting may cost the priority 1 doctors and give as
    much back to others, a total of 0 that is not a tie.
    """
    level = entry.get("deciding_level")
    if level is None:
        return "at no extra cost: as good on every level of this run's order, decided by the tie-break seed"
    delta = float(next(lv["price"] for lv in entry["price_levels"] if lv["level"] == level))
    if level == "moves":
        n = int(round(delta))
        what = f"{n} more {'doctor' if n == 1 else 'doctors'} of the previous allocation would have to move"
    elif level == "no priority":
        what = f"the total dissatisfaction of the doctors without a priority tier would rise by {delta:.6g}"
    elif level == "cost":
        what = f"total dissatisfaction would rise by {delta:.6g}"
    else:  # "priority 2": said as the pages say it, "tier 2"
        tier = level.removeprefix("priority ").strip()
        what = f"the total dissatisfaction of the tier {tier} doctors would rise by {delta:.6g}"
    return f"{what}, which this run's order puts first (total dissatisfaction {_num(entry.get('price'))})"


def statement_for(problem: ProblemData, assignment: np.ndarray, explanation: dict[str, Any]) -> Statement:
    """The statement of the worker ``explanation`` is about."""
    s = problem.worker_index[explanation["worker_id"]]
    j = int(assignment[s])
    alpha = problem.settings.preferencer_weight
    k = problem.settings.preference_power
    who, line = _name(problem, s), _line(problem, j)
    title = f"{who} ({problem.worker_ids[s]}): {line} ({problem.line_ids[j]})"
    ranked = problem.worker_ranked[s, j]
    lines = [
        f"Job line: {line} ({problem.line_ids[j]}), {choice_words(problem, s, j)} ({rank_words(problem, s, j)})"
        + (", pinned there by the planner." if problem.pin[s] == j else "."),
    ]
    pref = problem.preferencer_rank[s, j]
    pref_text = (
        f"the line's supervisors rank them {float(pref):g} on average"
        if not np.isnan(pref) else "no supervisor ranks workers for this line (neutral)"
    )
    dw_text = (
        f"their rank {float(problem.worker_rank[s, j]):g} to the power {k:g}" if ranked
        else f"the rank shared by every line they did not rank ({float(problem.worker_rank[s, j]):g}) to the power {k:g}"
    )
    lines.append(
        f"Dissatisfaction of this pair: {float(problem.cost[s, j]):.6g} = (1 - {alpha:g}) x doctor's side "
        f"{float(problem.dw[s, j]):.6g} + {alpha:g} x supervisors' side {float(problem.dp[s, j]):.6g}."
    )
    lines.append(f"Doctor's side: {dw_text}. Supervisors' side: {pref_text}"
                 + (f", weighting {float(problem.weight[s, j]):+g}." if problem.weight[s, j] else "."))
    higher = explanation.get("higher_choices", [])
    if not higher:
        lines.append("No line they ranked is better than this one: they got one of their best choices.")
    else:
        lines.append("Lines they ranked higher, and why they did not get them:")
        for e in higher:
            t = problem.line_index[e["job_line_id"]]
            lines.append(f"- {choice_words(problem, s, t).capitalize()}: " + price_words(problem, explanation["worker_id"], e))
    if explanation.get("method") == "certificate":
        lines.append("Prices are exact changes of the total dissatisfaction of the whole allocation; "
                     "each shows one cheapest way to make room.")
    return Statement(problem.worker_ids[s], title, lines, explanation)


def build_statements(
    result: Result,
    *,
    explanations: list[dict[str, Any]] | None = None,
    options: SolveOptions | None = None,
    time_budget: float | None = None,
) -> list[Statement]:
    """Every worker's statement, sorted by worker id (explains them all when not given)."""
    if result.problem is None or result.assignment is None:
        raise ValueError("this result has no allocation to explain")
    if explanations is None:
        explanations = explain_all(result, options=options, time_budget=time_budget)
    a = np.asarray(result.assignment, dtype=np.int64)
    return [statement_for(result.problem, a, x) for x in explanations]


# -- files ---------------------------------------------------------------------------------------


def _pdf(texts: list[str] | None = None):
    """A blank A4 document, its font family and a text cleaner.

    The PDF core font (Helvetica, Latin-1) when every text fits it: it needs no embedding,
    which keeps a one-page file small and quick. Otherwise a Unicode font of the system.
    """
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    font = next((f for f in _FONT_CANDIDATES if f.is_file()), None)
    if texts is not None and all(_is_latin1(t) for t in texts):
        font = None
    if font is not None:
        pdf.add_font("Statement", "", str(font))
        pdf.add_font("Statement", "B", str(font))  # the same face: bold is a nicety, not worth a second file
        return pdf, "Statement", lambda x: x
    return pdf, "helvetica", _latin1


def _is_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _latin1(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text)
    return plain.encode("latin-1", "replace").decode("latin-1")


def _paragraph(pdf, text: str, height: float) -> None:
    # fpdf2's multi_cell breaks lines character by character (tens of ms per paragraph);
    # wrapping on words at a width measured once per paragraph is a hundred times faster.
    avail = pdf.w - pdf.l_margin - pdf.r_margin
    width = pdf.get_string_width(text)
    if width <= avail:
        pdf.cell(0, height, text, new_x="LMARGIN", new_y="NEXT")
        return
    chars = max(20, int(len(text) * avail / width * 0.93))
    pieces = textwrap.wrap(text, chars, subsequent_indent="   ", break_long_words=True)
    while chars > 20 and any(pdf.get_string_width(x) > avail for x in pieces):
        chars = max(20, int(chars * 0.9))  # wide letters: wrap shorter until every line fits
        pieces = textwrap.wrap(text, chars, subsequent_indent="   ", break_long_words=True)
    for piece in pieces:
        pdf.cell(0, height, piece, new_x="LMARGIN", new_y="NEXT")


# Body font sizes tried in turn until the statement fits on its page.
_BODY_SIZES = (10.0, 9.0, 8.0, 7.0, 6.0, 5.0)


def _body_size(pdf, family: str, lines: list[str], height: float) -> float:
    """The largest body size at which ``lines`` fit in ``height`` mm (the smallest if none)."""
    pdf.set_font(family, "", 10)
    avail = pdf.w - pdf.l_margin - pdf.r_margin
    widths = [pdf.get_string_width(x) for x in lines]  # proportional to the size
    for size in _BODY_SIZES:
        k = size / 10.0
        rows = sum(max(1, math.ceil(w * k / (avail * 0.9))) for w in widths)
        if rows * size * 0.5 + len(lines) * size * 0.1 <= height:
            return size
    return _BODY_SIZES[-1]


def _page(pdf, family: str, clean, st: Statement, run_id: str) -> None:
    """One statement on one page: the body shrinks (down to 5 pt) so that it fits."""
    pdf.add_page()
    pdf.set_font(family, "B", 13)
    _paragraph(pdf, clean(st.title), 7)
    pdf.set_font(family, "", 9)
    _paragraph(pdf, clean(f"Run {run_id}. Allocation statement."), 5)
    pdf.ln(3)
    lines = [clean(x) for x in st.lines]
    size = _body_size(pdf, family, lines, pdf.h - pdf.get_y() - pdf.b_margin - 2)
    pdf.set_font(family, "", size)
    for line in lines:
        _paragraph(pdf, line, size * 0.5)
        pdf.ln(size * 0.1)


def _texts(statements: list[Statement], run_id: str) -> list[str]:
    return [run_id, *(t for st in statements for t in (st.title, *st.lines))]


def statements_pdf(statements: list[Statement], run_id: str = "") -> bytes:
    """One PDF, one page (or more, for a very long list) per worker."""
    pdf, family, clean = _pdf(_texts(statements, run_id))
    for st in statements:
        _page(pdf, family, clean, st, run_id)
    return bytes(pdf.output())


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "worker"


def statements_zip(statements: list[Statement], run_id: str = "") -> bytes:
    """A ZIP with, per worker, ``<id>.pdf`` (their page), ``<id>.txt`` and ``<id>.json``.

    Ids that give the same file name (``a/b`` and ``a_b``; ``W4`` and ``w4`` on Windows and
    macOS, whose file names ignore case) get ``-2``, ``-3``, ... after the later ones, so that
    unpacking the ZIP loses no worker's statement.
    """
    buf = io.BytesIO()
    taken: set[str] = set()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for st in statements:
            base = _safe(st.worker_id)
            if base.lower() in taken:
                base = next(f"{base}-{n}" for n in itertools.count(2) if f"{base}-{n}".lower() not in taken)
            taken.add(base.lower())
            z.writestr(f"{base}.pdf", statements_pdf([st], run_id))
            z.writestr(f"{base}.txt", st.text())
            z.writestr(f"{base}.json", json.dumps(st.explanation, indent=2, ensure_ascii=False) + "\n")
    return buf.getvalue()


def statements_table(result: Result, statements: list[Statement]) -> list[dict[str, Any]]:
    """One row per higher choice of every worker (one row with empty choice columns for a
    worker with none): the JSON/XLSX table, columns :data:`TABLE_COLUMNS`."""
    p = result.problem
    assert p is not None and result.assignment is not None
    a = np.asarray(result.assignment, dtype=np.int64)
    rows = []
    for st in statements:
        s = p.worker_index[st.worker_id]
        j = int(a[s])
        head = {
            "worker_id": st.worker_id, "worker": p.worker_names[s], "job_line_id": p.line_ids[j],
            "job_line": p.line_names[j], "rank": rank_words(p, s, j),
        }
        higher = st.explanation.get("higher_choices", [])
        if not higher:
            rows.append(head | {k: None for k in TABLE_COLUMNS if k not in head})
            continue
        for e in higher:
            t = p.line_index[e["job_line_id"]]
            rows.append(head | {
                "higher_choice_id": e["job_line_id"],
                "higher_choice": p.line_names[t],
                "higher_choice_rank": rank_words(p, s, t),
                "reason": e["reason"],
                "price": e.get("price"),
                "price_worker_side": e.get("price_worker_side"),
                "price_preferencer_side": e.get("price_preferencer_side"),
                "proven": e.get("proven"),
                "who_would_move": ", ".join(
                    f"{m['worker_id']} {m['from']}->{m['to']}" for m in e.get("moves") or []
                ) or None,
                "explanation": price_words(p, st.worker_id, e),
            })
    return rows


def statements_json(result: Result, statements: list[Statement]) -> str:
    """The table as JSON: ``{"run_id", "columns", "rows"}``."""
    return json.dumps(
        {"run_id": result.run_id, "columns": TABLE_COLUMNS, "rows": statements_table(result, statements)},
        indent=2, ensure_ascii=False,
    ) + "\n"


def statements_xlsx(result: Result, statements: list[Statement]) -> bytes:
    """The table as a workbook: one sheet, a header row, one row per higher choice."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Statements"
    ws.append(TABLE_COLUMNS)
    for row in statements_table(result, statements):
        ws.append([row.get(c) for c in TABLE_COLUMNS])
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


FORMATS = ("pdf", "zip", "json", "xlsx")


def statements_file(result: Result, fmt: str, statements: list[Statement] | None = None) -> bytes:
    """All statements of a run in one of :data:`FORMATS`, as bytes to write or download."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if statements is None:
        statements = build_statements(result)
    if fmt == "pdf":
        return statements_pdf(statements, result.run_id)
    if fmt == "zip":
        return statements_zip(statements, result.run_id)
    if fmt == "json":
        return statements_json(result, statements).encode("utf-8")
    return statements_xlsx(result, statements)


__all__ = [
    "FORMATS",
    "TABLE_COLUMNS",
    "Statement",
    "build_statements",
    "choice_number",
    "choice_words",
    "price_words",
    "rank_words",
    "statement_for",
    "statements_file",
    "statements_json",
    "statements_pdf",
    "statements_table",
    "statements_xlsx",
    "statements_zip",
]
