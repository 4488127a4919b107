"""Two replicas, one active: runs the Lease election loop and answers "may this replica act now?".

Why a thread of its own: renewing must not wait behind the event loop or the reconcile workers
(a busy replica that cannot renew in time would lose the Lease). The loop reads the Lease every
`retry_period`, lets jobchain.engine.coordination.election decide, and writes through jobchain.k8s.lease.

The standby keeps running its watches (its store stays warm, so a takeover needs no relisting)
but every reconcile and every write is refused while it does not act: the scheduler skips its
work and the writer calls `check()` before each side effect. `check()` reads the monotonic clock
itself, so a leader whose renewals stall stops acting at its renew deadline even if this loop is
stuck. On taking over, the controller looks again at everything it has seen.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from kubernetes import client

from jobchain.controller import metrics
from jobchain.engine.coordination.election import Action, Elector, Timing
from jobchain.k8s.errors import describe
from jobchain.k8s.lease import Conflict, LeaseClient

log = logging.getLogger(__name__)


class NotLeader(RuntimeError):
    """This replica does not hold the Lease (or could not renew it in time): it must not act."""


@dataclass(frozen=True)
class Settings:
    """From `jobchain operator --leader-elect ...`; None when the operator runs alone."""

    namespace: str
    name: str = "jobchain-operator"
    timing: Timing = field(default_factory=Timing)


# Set by controller.main before kopf starts (kopf's startup handler builds the Runtime from it).
SETTINGS: Settings | None = None


def identity() -> str:
    """The pod's name plus a random suffix: a restarted container is a new candidate, never the old holder."""
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{host}_{uuid.uuid4().hex[:8]}"


class Leadership:
    """Always acting when there is no election (one replica, or a developer's host operator)."""

    def __init__(self, settings: Settings | None, api: client.ApiClient | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.identity = identity()
        self.clock = clock
        self.elector = Elector(self.identity, settings.timing if settings else Timing())
        self._lease = LeaseClient(api, settings.namespace, settings.name) if settings and api else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_acting = False
        self.on_started: Callable[[], None] = lambda: None  # called from the election thread

    def acting(self) -> bool:
        return self.settings is None or self.elector.acting(self.clock())

    def check(self) -> None:
        """Raises NotLeader unless this replica may act now: called before every write."""
        if not self.acting():
            raise NotLeader(f"{self.identity} does not hold the Lease; a standby never writes")

    def start(self) -> None:
        if self._lease is None:
            metrics.LEADER.set(1)
            return
        metrics.LEADER.set(0)
        log.info("leader election: I am %s; Lease %s/%s", self.identity, self._lease.namespace, self._lease.name)
        self._thread = threading.Thread(target=self._loop, name="leader-election", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        assert self._lease is not None and self.settings is not None
        while not self._stop.is_set():
            try:
                self._round()
            except Exception as exc:  # the API server may be away: keep trying; acting() expires by itself
                log.warning("leader election: cannot read or write the Lease: %s", describe(exc))
            self._note_change()
            self._stop.wait(self.settings.timing.retry_period)

    def _round(self) -> None:
        assert self._lease is not None and self.settings is not None
        timing = self.settings.timing
        record = self._lease.read()
        action = self.elector.observe(record, self.clock())
        if action is Action.FOLLOW:
            return
        sent = self.clock()
        try:
            if action is Action.CREATE:
                self._lease.create(self.identity, timing.lease_duration)
            else:
                assert record is not None
                taking = action is Action.TAKE_OVER
                self._lease.write(record, self.identity, timing.lease_duration,
                                  record.transitions + (1 if taking else 0), acquired=taking)
        except Conflict as exc:
            self.elector.lost()
            log.info("leader election: %s", exc)
            return
        self.elector.written(sent)
        if action is not Action.RENEW:
            log.info("leader election: %s acquired the Lease (%s)", self.identity,
                     "released by its holder" if record is not None and not record.holder
                     else "expired" if record is not None else "new")

    def _note_change(self) -> None:
        now_acting = self.acting()
        if now_acting != self._was_acting:
            self._was_acting = now_acting
            metrics.LEADER.set(1 if now_acting else 0)
            if now_acting:
                log.info("leader election: %s is the active replica", self.identity)
                self.on_started()
            else:
                log.warning("leader election: %s stopped acting (lost the Lease or could not renew it in time)",
                            self.identity)

    def release(self) -> None:
        """A clean shutdown: stop acting, stop the loop, and hand the Lease back so a standby takes it at once."""
        was_acting = self.acting() and self._lease is not None
        self.elector.step_down()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not was_acting or self._lease is None:
            return
        try:
            record = self._lease.read()
            if record is not None and record.holder == self.identity:
                self._lease.write(record, "", 1, record.transitions, acquired=False)
                log.info("leader election: %s released the Lease", self.identity)
        except Exception as exc:  # it expires by itself
            log.warning("leader election: cannot release the Lease: %s", describe(exc))
