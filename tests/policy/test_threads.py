"""policy.threads: the thread count follows what the machine gives, with a bounded probe cost."""

from __future__ import annotations

import pytest

from policy.threads import WATCH_STEPS, ThreadGovernor, candidate_threads


class FakeMachine:
    """A step's cost depends on the thread count and on whether another process is busy."""

    def __init__(self, alone: dict[int, float], busy: dict[int, float]) -> None:
        self.alone, self.busy = alone, busy
        self.loaded = False
        self.now = 0.0
        self.threads = 0
        self.set_calls: list[int] = []

    def clock(self) -> float:
        return self.now

    def set_threads(self, n: int) -> None:
        self.threads = n
        self.set_calls.append(n)

    def cost(self) -> float:
        return (self.busy if self.loaded else self.alone)[self.threads]


def run(gov: ThreadGovernor, machine: FakeMachine, seconds: float) -> dict[int, float]:
    """Steps until ``seconds`` of fake time pass; the time spent at each count."""
    spent: dict[int, float] = {}
    end = machine.now + seconds
    while machine.now < end:
        with gov.step():
            n, cost = machine.threads, machine.cost()
            machine.now += cost
        spent[n] = spent.get(n, 0.0) + cost
    return spent


ALONE = {1: 0.12, 2: 0.08}  # two threads 1.5x faster, as measured on the 2-core machine
BUSY = {1: 0.13, 2: 5.4}  # beside another busy process, two threads collapse


def governor(machine: FakeMachine, **kw) -> ThreadGovernor:
    return ThreadGovernor((1, 2), clock=machine.clock, set_threads=machine.set_threads, **kw)


def test_alone_it_settles_on_the_faster_count():
    m = FakeMachine(ALONE, BUSY)
    gov = governor(m)
    run(gov, m, 10.0)
    assert not gov.probing
    assert gov.threads == 2 and m.threads == 2


def test_beside_busy_work_it_keeps_the_safe_count_and_the_probe_costs_one_step():
    m = FakeMachine(ALONE, BUSY)
    m.loaded = True
    gov = governor(m, probe_s=3.0)
    spent = run(gov, m, 30.0)
    assert gov.threads == 1
    # the collapsed count is dropped after its first (slow) step, not after a whole window
    assert spent.get(2, 0.0) == pytest.approx(BUSY[2])


def test_it_follows_the_machine_when_the_load_changes():
    m = FakeMachine(ALONE, BUSY)
    gov = governor(m, reprobe_s=20.0, max_reprobe_s=40.0)
    run(gov, m, 10.0)
    assert gov.threads == 2
    m.loaded = True  # another job starts: two threads now collapse
    run(gov, m, 30.0)
    assert gov.threads == 1
    m.loaded = False  # it ends: the next probe finds two threads faster again
    run(gov, m, 60.0)
    assert gov.threads == 2
    assert gov.switches >= 2


def test_a_collapse_is_noticed_at_once_not_after_the_backoff():
    m = FakeMachine(ALONE, BUSY)
    gov = governor(m, reprobe_s=60.0, max_reprobe_s=480.0)
    run(gov, m, 1000.0)  # long alone: the backoff is at its longest
    assert gov.threads == 2 and gov.reprobe_s == 480.0
    m.loaded = True
    spent = run(gov, m, 40.0)  # before the next scheduled probe
    assert gov.threads == 1
    # three collapsed steps to notice (median of WATCH_STEPS), one more in the probe: not
    # 480 s of them
    assert spent[2] <= (WATCH_STEPS // 2 + 2) * BUSY[2]


def test_probes_that_lose_back_off():
    m = FakeMachine(ALONE, BUSY)
    m.loaded = True
    gov = governor(m, reprobe_s=10.0, max_reprobe_s=40.0)
    run(gov, m, 400.0)
    # reprobes every 10, 20, 40, 40, ... s: under a dozen in 400 s, each one slow step at 2
    assert 3 <= gov.probes <= 12
    assert gov.reprobe_s == 40.0


def test_time_outside_a_step_is_not_counted():
    m = FakeMachine(ALONE, BUSY)
    gov = governor(m)
    for _ in range(40):
        with gov.step():
            m.now += m.cost()
        if m.threads == 2:
            m.now += 3.0  # an evaluation between steps, at the faster count
    assert gov.threads == 2


def test_one_candidate_is_a_fixed_count():
    m = FakeMachine({3: 0.1}, {3: 0.1})
    gov = ThreadGovernor((3,), clock=m.clock, set_threads=m.set_threads)
    run(gov, m, 5.0)
    assert m.set_calls == [3]


def test_candidates_are_half_and_all_cores():
    assert candidate_threads(2) == (1, 2)
    assert candidate_threads(1) == (1,)
    assert candidate_threads(16) == (8, 16)


@pytest.mark.parametrize("kw", [{"candidates": (0, 2)}, {"window": 1}])
def test_bad_settings_are_refused_by_name(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        ThreadGovernor(**kw, set_threads=lambda n: None)
