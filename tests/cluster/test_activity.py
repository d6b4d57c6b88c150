"""A replica counts the programs it serves: those with a request there and, once programs are
seen to come back, those between rounds (pure: no engine, times are given)."""

from agentflow.cluster.activity import ProgramActivity


def _tool_loop(activity: ProgramActivity, program: str, start_s: float, gap_s: float) -> float:
    """Two rounds of `program`, `gap_s` apart; returns when the second ended."""
    activity.dispatched(program, start_s)
    activity.ended(program, start_s + 1.0)
    activity.dispatched(program, start_s + 1.0 + gap_s)
    activity.ended(program, start_s + 2.0 + gap_s)
    return start_s + 2.0 + gap_s


def test_programs_count_while_a_request_is_in_flight():
    activity = ProgramActivity()
    activity.dispatched("a", 0.0)
    activity.dispatched("b", 0.0)
    activity.dispatched("b", 0.1)  # two requests of one program: one program
    assert activity.num_active(0.5) == 2
    activity.ended("a", 1.0)
    assert activity.num_active(1.0) == 1  # no program ever came back: finished means gone


def test_once_programs_come_back_an_idle_one_counts_until_its_gap_is_unusually_long():
    activity = ProgramActivity(min_idle_s=1.0, gap_factor=4.0)
    now_s = 0.0
    for i in range(20):  # programs that return after 0.5 s between rounds
        now_s = _tool_loop(activity, f"warm{i}", now_s, gap_s=0.5)
    assert activity.counts_idle_programs
    assert activity.idle_window_s == 2.0  # 4 x the 0.5 s gaps

    later_s = now_s + 100.0
    assert activity.num_active(later_s) == 0  # all long gone
    activity.dispatched("p", later_s)
    activity.ended("p", later_s + 1.0)
    assert activity.num_active(later_s + 2.0) == 1  # between rounds: still served here
    assert activity.num_active(later_s + 3.5) == 0  # idle 2.5 s, past the window


def test_a_long_gap_is_learnt_when_the_program_comes_back():
    activity = ProgramActivity(min_idle_s=1.0, gap_factor=2.0)
    now_s = 0.0
    for i in range(20):  # tools that take 10 s
        now_s = _tool_loop(activity, f"slow{i}", now_s, gap_s=10.0)
        activity.num_active(now_s)  # the program expires between rounds, yet its gap counts
    assert activity.idle_window_s == 20.0


def test_single_stage_programs_stop_counting_idle_ones():
    activity = ProgramActivity()
    now_s = _tool_loop(activity, "multi", 0.0, gap_s=0.5)
    assert activity.counts_idle_programs
    for i in range(200):  # then only single-request programs, none comes back
        activity.dispatched(f"one{i}", now_s)
        activity.ended(f"one{i}", now_s + 0.1)
    assert not activity.counts_idle_programs
