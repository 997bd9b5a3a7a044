"""What the tests share: named tiny runs and the test data folder (:mod:`.named_runs`),
hypothesis strategies (:mod:`.strategies`), a brute-force solver (:mod:`.bruteforce`), an
independent feasibility check of a snapshot (:mod:`.snapshot_feasibility`), database
helpers (:mod:`.dbtools`), runs with business rules and an independent check of links and
quotas (:mod:`.business_runs`) and the HiGHS reference model of those runs, solved tier by
tier (:mod:`.highs_reference`).

Every test imports them the one way, ``from tests.helpers.named_runs import ...``
(pytest's ``pythonpath = ["."]`` puts the project root on the path).
"""
