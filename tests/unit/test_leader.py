"""Leader election: who acts, when, with a fake clock and an in-memory Lease.

What a user would notice if these broke: two replicas both creating Jobs (two leaders at once),
no replica acting after a crash (no takeover), or a long gap after a clean shutdown (no release).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from jobchain.controller import election_loop as leader
from jobchain.controller.election_loop import Leadership, NotLeader, Settings
from jobchain.engine.coordination.election import Action, Elector, Record, Timing
from jobchain.k8s.lease import Conflict

TIMING = Timing(lease_duration=12, renew_deadline=8, retry_period=2)


def rec(holder: str, renew: str, version: str = "1", transitions: int = 0) -> Record:
    return Record(holder=holder, lease_duration=12, renew_time=renew, transitions=transitions, version=version)


def test_no_lease_is_created_and_a_write_makes_us_act_until_the_renew_deadline() -> None:
    me = Elector("a", TIMING)
    assert me.observe(None, now=0) is Action.CREATE
    assert not me.acting(0), "nobody acts before the Lease is written"
    me.written(sent_at=0.5)
    assert me.acting(8.4) and not me.acting(8.5), "the deadline counts from when the write was SENT"


def test_a_follower_takes_over_only_after_seeing_no_change_for_the_lease_duration() -> None:
    me = Elector("b", TIMING)
    assert me.observe(rec("a", "t1"), now=100) is Action.FOLLOW
    assert me.observe(rec("a", "t1"), now=111.9) is Action.FOLLOW
    assert me.observe(rec("a", "t2"), now=111.9) is Action.FOLLOW, "a renewal restarts the count"
    assert me.observe(rec("a", "t2"), now=123.8) is Action.FOLLOW
    assert me.observe(rec("a", "t2"), now=123.9) is Action.TAKE_OVER


def test_the_holders_clock_is_never_compared_with_ours() -> None:
    # renewTime is an hour "old" by our wall clock; only our own observation of change counts.
    me = Elector("b", TIMING)
    assert me.observe(rec("a", "1970-01-01T00:00:00.000000Z"), now=5) is Action.FOLLOW


def test_a_released_lease_is_taken_at_once() -> None:
    me = Elector("b", TIMING)
    assert me.observe(rec("a", "t1"), now=0) is Action.FOLLOW
    assert me.observe(rec("", "t2"), now=1) is Action.TAKE_OVER


def test_our_own_lease_is_renewed_and_someone_elses_stops_us_at_once() -> None:
    me = Elector("a", TIMING)
    assert me.observe(rec("a", "t1"), now=0) is Action.RENEW
    me.written(0)
    assert me.acting(1)
    assert me.observe(rec("b", "t2"), now=2) is Action.FOLLOW
    assert not me.acting(2), "another holder in the Lease: stop acting before our deadline"


def test_a_lost_write_or_a_step_down_stops_acting() -> None:
    me = Elector("a", TIMING)
    me.written(0)
    me.lost()
    assert not me.acting(0.1)
    me.written(1)
    me.step_down()
    assert not me.acting(1.1)


@pytest.mark.parametrize("timing", [Timing(10, 10, 2), Timing(10, 8, 8), Timing(10, 12, 2), Timing(10, 8, 0)])
def test_timings_that_would_allow_two_leaders_or_no_renewal_are_refused(timing: Timing) -> None:
    assert timing.problems()
    assert not TIMING.problems()


def test_a_leader_that_stops_acting_stops_before_anyone_may_take_over() -> None:
    """The safety property, over many schedules: from the last renew the leader SENT, it acts for
    renew_deadline; a follower that saw that renew (never before it was sent) waits lease_duration."""
    for sent, seen_delay in itertools.product([0.0, 3.3, 7.1], [0.0, 0.4, 2.0]):
        a, b = Elector("a", TIMING), Elector("b", TIMING)
        a.written(sent)
        b.observe(rec("a", f"renew@{sent}"), now=sent + seen_delay)
        takeover = next(t / 10 for t in range(0, 1000) if b.observe(rec("a", f"renew@{sent}"), now=t / 10)
                        is Action.TAKE_OVER)
        last_act = max(t / 10 for t in range(0, 1000) if a.acting(t / 10))
        assert last_act < takeover, (sent, seen_delay, last_act, takeover)


# ---- the election loop, against an in-memory Lease with the API server's conflict rule ------------------

@dataclass
class FakeLease:
    namespace: str = "ops"
    name: str = "jobchain-operator"
    record: Record | None = None
    writes: list[str] = field(default_factory=list)
    down: bool = False
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def read(self) -> Record | None:
        if self.down:
            raise ConnectionError("API server away")
        return self.record

    def create(self, identity: str, duration: float) -> Record:
        if self.record is not None:
            raise Conflict("exists")
        return self._put(identity, 0)

    def write(self, old: Record, holder: str, duration: float, transitions: int, acquired: bool) -> Record:
        if self.down:
            raise ConnectionError("API server away")
        if self.record is None or self.record.version != old.version:
            raise Conflict("changed")
        return self._put(holder, transitions)

    def _put(self, holder: str, transitions: int) -> Record:
        n = next(self.counter)
        self.record = Record(holder, 12, f"t{n}", transitions, str(n))
        self.writes.append(holder)
        return self.record


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def replica(lease: FakeLease, clock: Clock) -> Leadership:
    one = Leadership(Settings("ops", timing=TIMING), api=None, clock=clock)
    one._lease = lease  # type: ignore[assignment]
    return one


def test_two_replicas_one_acts_a_crash_hands_over_after_the_lease_expires() -> None:
    lease, clock = FakeLease(), Clock()
    a, b = replica(lease, clock), replica(lease, clock)
    a._round()
    b._round()
    assert a.acting() and not b.acting()
    with pytest.raises(NotLeader):
        b.check()
    for _ in range(5):  # a renews every retry period; b keeps following
        clock.now += 2
        a._round()
        b._round()
        assert a.acting() and not b.acting()
    # a crashes: no more renewals. b takes over once it has seen no change for lease_duration.
    crashed_at = clock.now
    while not b.acting():
        clock.now += 2
        b._round()
        assert not a.acting() or clock.now - crashed_at < TIMING.renew_deadline
    assert clock.now - crashed_at <= TIMING.lease_duration + TIMING.retry_period
    assert lease.record is not None and lease.record.holder == b.identity and lease.record.transitions == 1


def test_a_leader_that_cannot_renew_stops_acting_at_its_deadline_with_no_help_from_the_loop() -> None:
    lease, clock = FakeLease(), Clock()
    a = replica(lease, clock)
    a._round()
    assert a.acting()
    lease.down = True
    clock.now += TIMING.renew_deadline - 0.1
    a.check()  # still within the deadline
    clock.now += 0.2
    assert not a.acting()
    with pytest.raises(NotLeader):
        a.check()


def test_a_clean_shutdown_releases_and_the_standby_takes_over_at_its_next_look() -> None:
    lease, clock = FakeLease(), Clock()
    a, b = replica(lease, clock), replica(lease, clock)
    a._round()
    b._round()
    a.release()
    assert not a.acting()
    assert lease.record is not None and lease.record.holder == ""
    clock.now += TIMING.retry_period
    b._round()
    assert b.acting(), "a released Lease is taken at the standby's next look, not after it expires"


def test_two_replicas_taking_over_at_once_only_one_wins() -> None:
    lease, clock = FakeLease(), Clock()
    lease.record = Record("", 12, "t0", 3, "0")
    a, b = replica(lease, clock), replica(lease, clock)
    # both read the released Lease, then both write: the second write carries a stale version
    rec_a, rec_b = lease.read(), lease.read()
    assert a.elector.observe(rec_a, clock()) is Action.TAKE_OVER
    assert b.elector.observe(rec_b, clock()) is Action.TAKE_OVER
    assert rec_a is not None and rec_b is not None
    lease.write(rec_a, a.identity, 12, 4, True)
    a.elector.written(clock())
    with pytest.raises(Conflict):
        lease.write(rec_b, b.identity, 12, 4, True)
    assert a.acting() and not b.acting()


def test_without_election_the_operator_always_acts() -> None:
    alone = Leadership(None)
    assert alone.acting()
    alone.check()
    assert leader.SETTINGS is None


def test_identities_differ_per_process_start() -> None:
    assert leader.identity() != leader.identity(), "a restarted container must not resume an old holder's Lease"


# ---- a standby never writes ------------------------------------------------------------------------------

def test_the_writer_refuses_every_write_of_a_standby_before_any_request() -> None:
    from kubernetes import client

    from jobchain.k8s.writes import Writer

    writer = Writer(client.ApiClient(client.Configuration(host="http://127.0.0.1:9")))  # nothing listens there
    standby = Leadership(Settings("ops", timing=TIMING), api=None, clock=Clock())
    writer.guard = standby.check
    job = {"metadata": {"name": "j", "namespace": "ns", "ownerReferences": [{"uid": "u"}]}}
    with pytest.raises(NotLeader):
        writer.create_job(job)
    with pytest.raises(NotLeader):
        writer.delete_job("ns", "j")
    with pytest.raises(NotLeader):
        writer.json_patch_status("workflowexecutions", "ns", "x", [])
    writer.event({"metadata": {"name": "x", "namespace": "ns"}}, "WorkflowExecution", "Normal", "R", "m")  # silent


def test_the_workers_of_a_standby_start_no_reconcile() -> None:
    import asyncio

    from jobchain.controller.workers import Workers

    ran: list[tuple[str, str]] = []
    active = {"now": False}

    async def main() -> None:
        workers = Workers(ran.append, gate=lambda: active["now"])
        workers.poke(("ns", "x"))
        await workers.drain()
        assert ran == []
        active["now"] = True
        workers.poke(("ns", "x"))
        await workers.drain()
        workers.shutdown()

    asyncio.run(main())
    assert ran == [("ns", "x")]
