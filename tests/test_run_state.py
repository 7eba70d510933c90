"""The state a run carries across resumes: a typed record, stored under its old keys."""

import pytest
from pydantic import ValidationError

from lvtime.run_state import RunState


def test_a_checkpoint_from_before_forecasts_loads_and_round_trips_under_the_old_keys():
    old = {"val": {"0": 1.5}, "tokens": 120, "flops": 3.0e9}  # what runs saved before --forecast-every
    state = RunState.model_validate(old)
    assert (state.tokens_total, state.flops_total, state.best, state.evals_since_best) == (120, 3.0e9, None, 0)
    saved = state.to_checkpoint()
    assert set(saved) == {"val", "tokens", "flops", "forecast", "best", "since_best"}
    assert RunState.model_validate(saved) == state


def test_the_best_forecast_and_the_evaluations_since_it_are_counted():
    state = RunState(flops=10.0)
    assert state.note_forecast(0, 3.0) and state.best.step == 0 and state.best.flops == 10.0
    state.flops_total = 20.0
    assert not state.note_forecast(5, 3.5) and state.evals_since_best == 1
    assert state.note_forecast(10, 2.0) and (state.best.step, state.evals_since_best) == (10, 0)
    assert state.forecast_scores == {"0": 3.0, "5": 3.5, "10": 2.0}


@pytest.mark.parametrize("bad", [{"tokens": -1}, {"flops": "x"}, {"best": {"step": 1}}, {"unknown": 1}])
def test_a_state_of_the_wrong_shape_is_refused(bad):
    with pytest.raises(ValidationError):
        RunState.model_validate(bad)
