from agentflow.planner import derive_tiers, tier_for_slack


def test_tiers_are_distinct_tpots_less_a_margin_plus_a_loosest_tier():
    tiers = derive_tiers([0.15, 0.05, 0.05], margin_s=0.001, loosest_extra_s=0.1)
    assert tiers == (0.049, 0.149, 0.25)


def test_no_requests_means_no_tiers():
    assert derive_tiers([]) == ()


def test_tier_is_the_loosest_that_fits_the_slack():
    tiers = (0.049, 0.149, 0.25)
    assert tier_for_slack(tiers, 0.05) == 0
    assert tier_for_slack(tiers, 0.2) == 1
    assert tier_for_slack(tiers, 5.0) == 2


def test_behind_schedule_means_the_tightest_tier():
    assert tier_for_slack((0.049, 0.149), -0.3) == 0
