"""One finding type: what a check of a run found, in the planner's words, with whom it concerns.

The data-health report (:mod:`allocator.health`) and the infeasibility diagnosis
(:mod:`allocator.diagnosis`) both give :class:`Finding` objects; every diagnosis is a
``"problem"`` (:meth:`Finding.problem`), so the report takes the diagnosis's pre-checks as they
are. A result's ``diagnosis`` entries leave the severity out (:func:`allocator.diagnosis.entry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["problem", "warning"]

#: The run cannot be solved as it is.
PROBLEM: Severity = "problem"
#: It will solve, but a planner should look.
WARNING: Severity = "warning"


@dataclass(frozen=True)
class Finding:
    """One thing a check found.

    Attributes
    ----------
    code
        What kind of finding, in capitals (e.g. ``WORKER_NO_LINE``): stable, for programs and tests.
    severity
        ``"problem"``: the solve will fail; ``"warning"``: it will run, but check.
    message
        What is wrong and what to do, in the planner's words, naming workers and job lines.
    worker_ids, job_line_ids
        The workers and job lines concerned (empty when it concerns the whole run).
    """

    code: str
    severity: Severity
    message: str
    worker_ids: tuple[str, ...] = ()
    job_line_ids: tuple[str, ...] = ()

    @classmethod
    def problem(cls, code: str, message: str, worker_ids: tuple[str, ...] = (),
                job_line_ids: tuple[str, ...] = ()) -> Finding:
        """A finding that the run cannot be solved as it is (severity ``"problem"``)."""
        return cls(code, PROBLEM, message, tuple(worker_ids), tuple(job_line_ids))

    def to_dict(self) -> dict[str, Any]:
        """Every field, the ids as lists (JSON-ready)."""
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "worker_ids": list(self.worker_ids),
            "job_line_ids": list(self.job_line_ids),
        }
