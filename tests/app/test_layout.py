"""Small helpers every page uses: unique picker labels, data made safe inside markdown."""

from __future__ import annotations

import layout


def test_unique_labels_add_the_id_only_where_labels_clash():
    out = layout.unique_labels([("r-1111111111", "Intake"), ("r-2222222222", "Intake"), ("r-3", "Other")])
    assert out == {"r-1111111111": "Intake [r-111111]", "r-2222222222": "Intake [r-222222]", "r-3": "Other"}
    assert len(set(out.values())) == 3


def test_md_escapes_what_would_format():
    assert layout.md("Dr *Smith* [x](javascript:y) <b>") == r"Dr \*Smith\* \[x\](javascript\:y) \<b\>"
    assert layout.md("Line 1: ED / Gen Med (Westmead)") == r"Line 1\: ED / Gen Med (Westmead)"
    assert layout.md("plain.json") == "plain.json"


def test_every_engine_phase_has_planner_words():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "allocator"
    phases = set()
    for f in root.rglob("*.py"):
        phases |= set(re.findall(r'on_phase\("([^"]+)"\)', f.read_text(encoding="utf-8")))
    assert phases and phases <= set(layout.PHASE_WORDS)
