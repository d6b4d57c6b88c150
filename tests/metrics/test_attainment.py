"""The SLO rule every benchmark uses (SLOs-Serve's)."""

from agentflow.metrics import attainment, judge_slo


def test_first_token_within_five_percent_of_ttft_meets_ttft():
    assert judge_slo(100, 50, [104.9]).ttft_met
    assert not judge_slo(100, 50, [105.1]).ttft_met


def test_tpot_is_checked_every_twentieth_token_from_the_ttft_deadline():
    # first token early at 10 ms: decode credit still starts at the 100 ms TTFT deadline
    on_time = [10.0 + 52.0 * i for i in range(40)]
    verdict = judge_slo(100, 50, on_time)
    assert verdict.ttft_met and verdict.tpot_met
    late = [10.0] + [200.0 + 60.0 * i for i in range(39)]
    assert not judge_slo(100, 50, late).tpot_met


def test_stall_between_checkpoints_is_forgiven_if_caught_up_by_the_checkpoint():
    times = [50.0] + [50.0 + 1.0 * i for i in range(1, 18)] + [900.0, 1000.0]
    assert judge_slo(100, 50, times).tpot_met  # token 20 at 1000 <= 100 + 19 * 52.5


def test_best_effort_and_empty_requests_are_misses():
    assert not judge_slo(100, 50, [1.0], admitted=False).met
    assert not judge_slo(100, 50, []).met


def test_attainment_is_the_share_met():
    assert attainment([True, False, True, True]) == 0.75
    assert attainment([]) == 1.0
