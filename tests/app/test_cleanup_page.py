"""A draft started before a worker was withdrawn: one click on the Scenario page takes them out.

The draft gets a couple and priority tiers; then a worker of the couple is withdrawn through
the service (as the Runs page does), and the planner comes back to the Scenario page.
"""

from __future__ import annotations

import cleanup
import layout
import pytest

from allocator import service
from tests.app.conftest import open_app, solve_now
from tests.app.test_draft import editor_table, edits, errors, leave_and_come_back
from tests.helpers.dbtools import small_snapshot


def texts(elements) -> str:
    return " ".join(e.value for e in elements)


@pytest.mark.parametrize("button", ["sc_remove_gone", "sc_remove_gone_tiers"])  # above Solve, or in Priority tiers
def test_one_click_takes_a_withdrawn_worker_out_of_the_draft_and_it_stays_out(import_run, db_store, button):
    run_id = import_run(small_snapshot(6, 3))
    at = open_app(run_id, "scenario")
    at.session_state["sc_links"] = edits(added=[{"Link id": "couple-1", "Worker 1": "w3", "Worker 2": "w4"}])
    at.run()
    at.multiselect(key="sc_tier_who").set_value(["w2", "w4"]).run()
    at.number_input(key="sc_tier_value").set_value(2).run()
    at.button(key="sc_tier_set").click().run()
    assert not at.exception and not at.error, errors(at)
    assert not at.button(key="sc_solve").disabled
    assert not [b for b in at.button if b.key and b.key.startswith("sc_remove_gone")]  # all is current

    service.withdraw_worker(db_store, run_id, "w4", reason="Left the programme", changed_by="test")
    leave_and_come_back(at)
    # The draft still names w4: in the couple (a problem) and in the tiers (not counted).
    assert at.button(key="sc_solve").disabled
    assert "Linked workers, row 1 ('couple-1'): worker 'w4' is not a worker of this run" in errors(at)
    assert f"press *{cleanup.BUTTON}* above" in errors(at)
    (found,) = [w.value for w in at.warning if w.value.startswith("This draft still names")]
    assert "the worker Worker 4 (w4), no longer in the run" in found and "in 2 entries" in found
    assert "w4" in editor_table(at, "sc_tiers")["Worker id"].tolist()
    assert at.button(key="sc_remove_gone").label == cleanup.BUTTON
    assert at.button(key="sc_remove_gone_tiers").label == cleanup.BUTTON  # where the tiers say it too

    at.button(key=button).click().run()
    assert not at.exception, at.exception
    (done,) = [s.value for s in at.success if "Removed" in s.value]
    assert "Removed 2 entries naming workers or job lines no longer in the run" in done
    assert layout.md("Worker 4 (w4) taken out of the couple 'couple-1': it had only Worker 3 (w3) left, "
                     "so the couple was removed (a link needs 2 workers).") in done
    assert layout.md("Priority tiers: the row of Worker 4 (w4) (tier 2); they are no longer in the run.") in done
    assert not at.error, errors(at)
    assert not [w for w in at.warning if w.value.startswith("This draft still names")]

    # Leave the page and come back: the draft stays cleaned, and Solve is allowed.
    leave_and_come_back(at)
    assert not at.error, errors(at)
    assert editor_table(at, "sc_links").empty
    tiers = editor_table(at, "sc_tiers").set_index("Worker id")["Priority tier"]
    assert tiers.index.tolist() == ["w1", "w2", "w3", "w5", "w6"]
    assert tiers["w2"] == "2" and tiers.drop("w2").isna().all()  # the other tiers as the planner set them
    assert not [b for b in at.button if b.key and b.key.startswith("sc_remove_gone")]
    assert not at.button(key="sc_solve").disabled
    res = solve_now(at)
    assert res["overrides"]["priorities"] == [{"worker_id": "w2", "priority": 2}]
    assert "linked_workers" not in res["overrides"]
    assert "w4" not in {a["worker_id"] for a in res["result"]["allocations"]}
