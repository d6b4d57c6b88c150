from agentflow.metrics.prometheus import ServingMetrics
from agentflow.runtime.records import ProgramResult, ProgramStatus, StageRecord


def _record(**fields):
    base = {
        "program_id": "p-0",
        "stage": "think",
        "iteration": 0,
        "tier": "tight",
        "request_id": "p-0:think:0",
        "ttft_budget_ms": 300,
        "tpot_budget_ms": 40,
        "prompt_tokens": 10,
        "submitted_ms": 0,
        "ttft_ms": 120.0,
        "tpot_ms": 30.0,
        "output_tokens": 7,
        "slo_met": True,
        "status": "finished",
        "lane": "admitted",
    }
    return StageRecord(**(base | fields))


def _value(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels)


def test_a_best_effort_or_failed_call_is_counted_in_its_lane_and_never_as_met():
    metrics = ServingMetrics()
    metrics.observe_stage(_record())
    metrics.observe_stage(_record(best_effort=True, lane="best_effort", slo_met=False))
    metrics.observe_stage(_record(status="failed", slo_met=False, ttft_ms=None, tpot_ms=None))
    stage = {"stage": "think", "tier": "tight"}
    assert (
        _value(metrics, "agentflow_requests_total", **stage, lane="admitted", status="finished")
        == 1
    )
    assert (
        _value(metrics, "agentflow_requests_total", **stage, lane="best_effort", status="finished")
        == 1
    )
    assert (
        _value(metrics, "agentflow_requests_total", **stage, lane="admitted", status="failed") == 1
    )
    assert _value(metrics, "agentflow_slo_met_total", **stage) == 1
    assert _value(metrics, "agentflow_ttft_seconds_count", **stage) == 2  # the failed one had none
    assert _value(metrics, "agentflow_ttft_seconds_sum", **stage) == 0.24
    assert _value(metrics, "agentflow_output_tokens_total", **stage) == 21


def test_a_program_counts_once_and_its_stages_each():
    metrics = ServingMetrics()
    result = ProgramResult(
        program_id="p-0",
        agent="reasoner",
        inputs={},
        status=ProgramStatus.DEADLINE_EXCEEDED,
        stages=[_record(), _record(stage="answer", tier="loose")],
    )
    metrics.observe_program(result)
    assert (
        _value(metrics, "agentflow_programs_total", agent="reasoner", status="deadline_exceeded")
        == 1
    )
    answer = {"stage": "answer", "tier": "loose", "lane": "admitted", "status": "finished"}
    assert _value(metrics, "agentflow_requests_total", **answer) == 1


def test_in_flight_follows_the_tracked_block_even_when_it_raises():
    metrics = ServingMetrics()
    try:
        with metrics.tracking():
            assert _value(metrics, "agentflow_requests_in_flight") == 1
            raise RuntimeError("engine failed")
    except RuntimeError:
        pass
    assert _value(metrics, "agentflow_requests_in_flight") == 0


def test_two_servers_in_one_process_keep_separate_counts():
    first, second = ServingMetrics(), ServingMetrics()
    first.observe_stage(_record())
    assert b"agentflow_requests_total" in first.render()
    labels = {"stage": "think", "tier": "tight", "lane": "admitted", "status": "finished"}
    assert _value(second, "agentflow_requests_total", **labels) is None


def test_a_call_on_an_engine_without_admission_control_is_counted_as_unplanned():
    metrics = ServingMetrics()
    metrics.observe_stage(_record(lane=None))
    labels = {"stage": "think", "tier": "tight", "lane": "unplanned", "status": "finished"}
    assert _value(metrics, "agentflow_requests_total", **labels) == 1
