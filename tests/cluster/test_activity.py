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


def test_a_program_whose_end_is_signalled_stops_counting_at_once():
    activity = ProgramActivity(min_idle_s=1.0, gap_factor=4.0)
    now_s = 0.0
    for i in range(20):
        now_s = _tool_loop(activity, f"warm{i}", now_s, gap_s=0.5)
    now_s += 10.0  # the warm-up programs have expired
    activity.dispatched("done", now_s)
    activity.ended("done", now_s + 1.0)
    activity.dispatched("between", now_s)
    activity.ended("between", now_s + 1.0)
    assert activity.num_active(now_s + 1.5) == 2  # both idle within the 2 s window
    activity.program_ended("done")
    assert activity.num_active(now_s + 1.5) == 1  # only the one between rounds


def test_signalled_ends_make_programs_between_rounds_count_before_any_comes_back():
    activity = ProgramActivity(min_idle_s=1.0)
    activity.dispatched("one", 0.0)
    activity.ended("one", 0.5)
    assert activity.num_active(0.6) == 0  # nothing says it is coming back
    activity.program_ended("one")
    activity.dispatched("loop", 1.0)
    activity.ended("loop", 1.5)
    assert activity.counts_idle_programs
    assert activity.num_active(1.6) == 1  # not ended, so between rounds
    assert activity.num_active(3.0) == 0  # the idle window still bounds an unsignalled end


def test_ending_a_program_with_a_request_still_in_flight_keeps_the_count_consistent():
    activity = ProgramActivity()
    activity.dispatched("cancelled", 0.0)
    activity.program_ended("cancelled")
    assert activity.num_active(0.1) == 0
    activity.ended("cancelled", 0.2)  # the abort arrives after the end: nothing to undo
    activity.dispatched("next", 0.3)
    assert activity.num_active(0.3) == 1
