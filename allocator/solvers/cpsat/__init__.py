"""CP-SAT backend: weak stability with ties, on top of the flow (see :mod:`.model`).

Inside: :mod:`.variables`, :mod:`.constraints` (one function per rule family, in a stated
order), :mod:`.objective`, the provably safe :mod:`.pruning`, and :mod:`.model`, which runs
the phases.
"""

from allocator.solvers.cpsat.model import solve_stable

__all__ = ["solve_stable"]
