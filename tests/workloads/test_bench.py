from agentflow.workloads.bench import SPEC_POLICIES, _ratio, capacity_table


def test_agentflow_is_compared_with_the_best_baseline_with_or_without_speculation():
    capacity = {"vllm": 2.0, "sarathi": 1.0, "vllm+spec": 3.0, "agentflow+spec": 4.5}
    assert _ratio(capacity) == 1.5
    assert _ratio({"vllm": 2.0, "agentflow": 3.0}) == 1.5
    assert _ratio({"vllm": 0.0, "agentflow": 3.0}) is None  # undefined, not infinite
    assert _ratio({"agentflow": 3.0}) is None


def test_the_speculation_run_has_every_baseline_both_ways_and_agentflow_with_it():
    assert set(SPEC_POLICIES) == {
        "vllm",
        "sarathi",
        "distserve",
        "vllm+spec",
        "sarathi+spec",
        "distserve+spec",
        "agentflow+spec",
    }


def test_the_table_has_a_column_per_policy_that_ran():
    results = {
        "scenarios": {
            "coding": {
                "capacity_rps": {"vllm": 0.25, "agentflow+spec": 0.75},
                "ratio_vs_best_baseline": 3.0,
                "paper_ratio": None,
            }
        },
        "geomean_ratio_vs_best_baseline": 3.0,
    }
    table = capacity_table(results)
    assert "agentflow+spec" in table.splitlines()[0]
    assert "0.750" in table and "3.00" in table
