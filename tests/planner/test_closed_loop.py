import numpy as np
import pytest

from .closed_loop import poisson_arrivals, run_closed_loop
from .factories import PREDICTOR, make_config


@pytest.mark.parametrize("rate", [2.0, 8.0])
def test_admitted_requests_meet_their_slos_when_steps_take_the_predicted_time(rate):
    flights = poisson_arrivals(np.random.default_rng(7), rate, 20.0, PREDICTOR)
    config = make_config()
    admitted = run_closed_loop(flights, PREDICTOR, config)
    assert len(admitted) >= 0.3 * len(flights)
    missed = [f.request_id for f in admitted if not f.meets_slo(config.tpot_tolerance)]
    assert missed == []


def test_overload_is_met_by_admitting_fewer_not_by_missing_slos():
    light = poisson_arrivals(np.random.default_rng(8), 1.0, 20.0, PREDICTOR)
    heavy = poisson_arrivals(np.random.default_rng(8), 12.0, 20.0, PREDICTOR)
    config = make_config()
    light_admitted = run_closed_loop(light, PREDICTOR, config)
    heavy_admitted = run_closed_loop(heavy, PREDICTOR, config)
    assert len(light_admitted) / len(light) > len(heavy_admitted) / len(heavy)
    assert all(f.meets_slo(config.tpot_tolerance) for f in heavy_admitted)


def test_pacing_decode_to_the_scored_tolerance_admits_more_and_keeps_that_promise():
    flights = poisson_arrivals(np.random.default_rng(7), 8.0, 20.0, PREDICTOR)
    admitted = {}
    for tolerance in (0.0, 0.05):
        config = make_config(tpot_tolerance=tolerance)
        admitted[tolerance] = run_closed_loop(flights, PREDICTOR, config)
        assert all(f.meets_slo(tolerance) for f in admitted[tolerance])
    assert len(admitted[0.05]) > len(admitted[0.0])
