"""One finding type: what a check of a run found, in the planner's words, with whom it concerns.

The data-health report (:mod:`allocator.health`) gives its findings as :class:`Finding`; the
infeasibility diagnosis (:mod:`allocator.diagnosis`) has the same fields bar the severity (every
diagnosis is a reason the run cannot be solved), so :meth:`Finding.from_diagnosis` carries one
over unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

Severity = Literal["problem", "warning"]

#: The run cannot be solved as it is.
PROBLEM: Severity = "problem"
#: It will solve, but a planner should look.
WARNING: Severity = "warning"


class _Coded(Protocol):
    code: str
    message: str
    worker_ids: tuple[str, ...]
    job_line_ids: tuple[str, ...]


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
    def from_diagnosis(cls, diagnosis: _Coded, severity: Severity = PROBLEM) -> Finding:
        """A diagnosis (:class:`allocator.diagnosis.Diagnosis`) as a finding, words and ids unchanged."""
        return cls(diagnosis.code, severity, diagnosis.message, tuple(diagnosis.worker_ids),
                   tuple(diagnosis.job_line_ids))

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "worker_ids": list(self.worker_ids),
            "job_line_ids": list(self.job_line_ids),
        }
