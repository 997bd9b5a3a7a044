"""The planner's word for what a worker carries and a line's rules look at is "tag" (UI.md: "every
worker lacks the tag *paediatrics*"), on every page, as in the engine's diagnoses, explanations and
the workbook. The snapshot keeps its field names (``qualification_ids``): only the words change.
"""

from __future__ import annotations

import charts
import derived

from allocator.demo import demo_snapshot
from allocator.snapshot import RunSnapshot
from tests.app.conftest import open_app


def page_text(at) -> str:
    """Everything a page shows or explains (labels, help, captions, messages, table cells)."""
    parts: list[str] = []

    def walk(node) -> None:
        for child in getattr(node, "children", {}).values():
            proto = getattr(child, "proto", None)
            if proto is not None:
                parts.append(str(proto))
            value = getattr(child, "value", None)
            if hasattr(value, "to_csv"):
                parts.append(value.to_csv())
            walk(child)

    walk(at.main)
    walk(at.sidebar)
    return "\n".join(parts)


def test_the_eligibility_reasons_say_tag():
    for words in (charts.REASON_WORDS, derived.STEP_WORDS):
        text = " ".join(words.values()).lower()
        assert "qualification" not in text
    assert derived.STEP_WORDS["MISSING_INCLUDED_TAG"] == "5. Lacks every tag the line requires"


def test_no_page_says_qualification(demo_run):
    run = RunSnapshot.parse(demo_snapshot())
    # A line whose rules exclude a tag, and one worker with tags: both spelled out on Eligibility.
    lines = sorted(run.job_lines, key=lambda j: j.id)
    rules = {e.job_line_id: e for e in run.eligibility}
    excluding = next(i for i, j in enumerate(lines) if j.id in rules and rules[j.id].excluded_qualification_ids)
    at = open_app(demo_run)
    seen, el_text = [], ""
    for page in ("runs", "scenario", "results", "eligibility", "compare", "publish"):
        at.switch_page(f"../pages/{page}.py").run()
        assert not at.exception, at.exception
        if page == "eligibility":
            at.selectbox(key="el_line").select(excluding).run()
            assert not at.exception, at.exception
        text = page_text(at)
        seen.append(page)
        el_text = text if page == "eligibility" else el_text
        assert "qualification" not in text.lower(), (page, [ln for ln in text.splitlines()
                                                           if "qualification" in ln.lower()][:5])
    assert "Tags: " in el_text and ("excludes the tag " in el_text or "excludes the tags " in el_text)
    assert seen[-1] == "publish"


#: The engine's and the spec's names that a planner must never read (UI.md, "Words").
CODE_NAMES = ("max_n_workers", "must_have_workers", "qualification_ids", "preferencer_weight", "preference_power",
              "max_seconds", "rng_seed", "allow_worker_preference_ties", "fewest_moves", "linked_workers",
              "worker_id", "job_line_id", "preferencer")


def test_no_page_shows_a_code_name_or_a_plural_in_brackets(demo_run):
    # Walked in the browser: "118 worker-and-line pair(s)" on Results, "2 worker(s) ranked no job
    # line" on Runs. A count is said in words ("1 worker", "2 workers"), as on the other pages.
    import re

    from tests.app.conftest import solve_now

    at = open_app(demo_run, "scenario")
    solve_now(at)
    for page in ("runs", "scenario", "results", "eligibility", "compare", "publish"):
        at.switch_page(f"../pages/{page}.py").run()
        assert not at.exception, at.exception
        text = "\n".join(x.value for kind in ("markdown", "caption", "warning", "info", "error", "success")
                         for x in getattr(at, kind) if isinstance(x.value, str))
        text += "\n".join(x.label + " " + (x.help or "") for x in at.metric)
        assert not re.search(r"\w\(s\)", text), (page, [ln for ln in text.splitlines() if "(s)" in ln][:5])
        for name in CODE_NAMES:
            assert not re.search(rf"\b{name}\b", text), (page, name)
