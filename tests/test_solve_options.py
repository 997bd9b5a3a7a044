"""One validated solve-options object, built from the configuration in one place."""

from __future__ import annotations

import math

import pytest

from allocator import service
from allocator.config import get_settings
from allocator.solvers.base import SolveOptions


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"threads": 0}, "threads must be a whole number of at least 1 (got 0)"),
        ({"threads": -3}, "at least 1 (got -3)"),
        ({"threads": True}, "at least 1 (got True)"),
        ({"threads": 2.5}, "at least 1 (got 2.5)"),
        ({"time_limit": math.inf}, "time limit must be a number of seconds"),
        ({"time_limit": math.nan}, "time limit must be a number of seconds"),
        ({"time_limit": -1.0}, "not negative (got -1.0)"),
        ({"initial_allocation": {"w1": 3}}, "map worker ids to job line ids (not 'w1')"),
        ({"initial_allocation": ["w1"]}, "map worker ids to job line ids"),
        ({"cpsat_parameters": {"no_such_parameter": 1}}, "Unknown CP-SAT parameter(s): no_such_parameter"),
    ],
)
def test_bad_options_are_refused_on_construction(kwargs, words):
    with pytest.raises(ValueError) as info:
        SolveOptions(**kwargs)
    assert words in str(info.value)


def test_every_problem_is_named_at_once():
    with pytest.raises(ValueError) as info:
        SolveOptions(threads=0, time_limit=-1)
    assert "threads" in str(info.value) and "time limit" in str(info.value)


def test_good_options_keep_what_they_are_given():
    options = SolveOptions(
        threads=3, time_limit=0.0, initial_allocation={"w1": "j2"}, cpsat_parameters={"num_search_workers": 1}
    )
    assert (options.threads, options.time_limit) == (3, 0.0)
    assert options.initial_allocation == {"w1": "j2"}
    assert options.cpsat_parameters == {"num_search_workers": 1}


def test_the_service_builds_threads_from_the_configuration_unless_a_flag_says_otherwise():
    configured = get_settings(solver_threads=5)
    assert service.solve_options(configured).threads == 5
    assert service.solve_options(configured, threads=1).threads == 1
    assert service.solve_options().threads == SolveOptions().threads
    assert service.solve_options(get_settings(solver_threads=None)).threads == SolveOptions().threads


def test_the_service_refuses_what_the_options_refuse():
    with pytest.raises(ValueError, match="at least 1"):
        service.solve_options(threads=0)
    with pytest.raises(ValueError, match="Unknown CP-SAT parameter"):
        service.solve_options(cpsat_parameters={"nope": True})


def test_cpsat_parameters_lie_over_the_model_s_own():
    from ortools.sat.python import cp_model

    from allocator.solvers.cpsat.model import run_cpsat

    model = cp_model.CpModel()
    x = model.new_int_var(0, 3, "x")
    model.maximize(x)
    options = SolveOptions(threads=2, cpsat_parameters={"num_workers": 1, "max_deterministic_time": 5.0})
    status, solver = run_cpsat(model, options, time_limit=5.0, seed=1, num_workers=2)
    assert status == cp_model.OPTIMAL and solver.value(x) == 3
    assert solver.parameters.num_workers == 1
    assert solver.parameters.max_deterministic_time == 5.0
