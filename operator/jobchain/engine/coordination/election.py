"""Leader election decisions over a coordination.k8s.io Lease, without I/O and with the clock passed in.

Why a Lease and these rules: they are what Kubernetes' own controllers do (client-go's
leaderelection), so users can read `kubectl get lease` as they would for kube-controller-manager.
One replica holds the Lease and renews it every `retry_period`; the others watch it.

Two clocks are kept apart on purpose:
- A follower never compares the holder's `renewTime` with its own wall clock (the two machines'
  clocks may disagree). It notes, on its own monotonic clock, when it last saw the record change,
  and takes the Lease over only when it has seen no change for `lease_duration`.
- The leader acts only until `renew_deadline` after it SENT its last successful renew (on its own
  monotonic clock). As `renew_deadline < lease_duration`, and a follower's lease_duration starts no
  earlier than that send, the old leader has stopped acting before anyone may take over, even when
  it cannot reach the API server at all.
A released Lease (empty holder: a clean shutdown) is taken at once, so a rolling update hands over
within one `retry_period`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Timing:
    """The Lease's timing, in seconds (the defaults of the chart and manifests)."""

    lease_duration: float = 12.0
    renew_deadline: float = 8.0
    retry_period: float = 2.0

    def problems(self) -> list[str]:
        """What is wrong with these numbers, for an error message at startup."""
        found = []
        if not 0 < self.retry_period < self.renew_deadline:
            found.append(f"retry period ({self.retry_period}s) must be above 0 and below the renew deadline "
                         f"({self.renew_deadline}s)")
        if not self.renew_deadline < self.lease_duration:
            found.append(f"renew deadline ({self.renew_deadline}s) must be below the lease duration "
                         f"({self.lease_duration}s): a leader that cannot renew must stop before another takes over")
        return found


@dataclass(frozen=True)
class Record:
    """The Lease's spec as far as the election uses it. `version` is the object's resourceVersion:
    every write is conditional on it, so of two replicas writing at once only one succeeds."""

    holder: str  # "" when released
    lease_duration: float
    renew_time: str  # as the API server returned it; compared only for change, never with a clock
    transitions: int
    version: str


class Action(Enum):
    CREATE = "create"  # no Lease yet: create it, holding it
    TAKE_OVER = "take over"  # released or expired: write ourselves as holder (transitions + 1)
    RENEW = "renew"  # ours: write a new renewTime
    FOLLOW = "follow"  # someone else's and alive: do nothing, look again later


@dataclass
class Elector:
    """One replica's view of the election. Feed it each Lease read (`observe`) and each successful
    write (`written`); ask it `acting(now)` before every side effect."""

    identity: str
    timing: Timing
    _seen: tuple[str, str] | None = None  # (holder, renew_time) last observed
    _seen_at: float | None = None  # monotonic time the record last changed, as we saw it
    _lead_until: float | None = None  # acting until this monotonic time (only while we hold the Lease)

    def observe(self, record: Record | None, now: float) -> Action:
        """What to do about the Lease as just read at monotonic time `now`."""
        if record is None:
            self._lead_until = None
            return Action.CREATE
        key = (record.holder, record.renew_time)
        if key != self._seen:
            self._seen, self._seen_at = key, now
        if record.holder == self.identity:
            return Action.RENEW
        # Someone else's (or nobody's): whatever we thought, we are not leading.
        self._lead_until = None
        if not record.holder:
            return Action.TAKE_OVER
        assert self._seen_at is not None
        duration = record.lease_duration or self.timing.lease_duration
        return Action.TAKE_OVER if now - self._seen_at >= duration else Action.FOLLOW

    def written(self, sent_at: float) -> None:
        """A create, take-over or renew sent at monotonic `sent_at` succeeded: we lead until the deadline."""
        self._lead_until = sent_at + self.timing.renew_deadline

    def lost(self) -> None:
        """A write failed with a conflict (another replica wrote first): stop acting now."""
        self._lead_until = None

    def acting(self, now: float) -> bool:
        """True while this replica may act: it holds the Lease and renewed it within the deadline."""
        return self._lead_until is not None and now < self._lead_until

    def step_down(self) -> None:
        """A clean shutdown: stop acting before the Lease is released."""
        self._lead_until = None
