"""Whether a node's Job cannot create its pod, from the Job controller's FailedCreate Events.

Why Events: admission (Pod Security, a webhook, a LimitRange, a missing ServiceAccount) judges
pods, not Jobs, so the Job is created and only its pods are refused. The Job controller says so
in FailedCreate Events on the Job and keeps trying, with no condition on the Job, until its
deadline: without this the node would hang Running, holding its queue slot, for as long. A
refusal that only time lifts (a full ResourceQuota), and a passing error (a timeout), are waited
for: the Job controller creates the pod once it can.

Why only Jobs without pods, and not at once: pods normally appear within a second of their Job,
so the Events are listed only for a Job that has had none for FIRST_LOOK seconds, then less and
less often (never more than MAX_INTERVAL apart): a few requests per stuck node, none per healthy one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

FAILED_CREATE = "FailedCreate"
FIRST_LOOK = 2.0
MAX_INTERVAL = 30.0
# What a refusal says (PodSecurity, a LimitRange, a missing ServiceAccount: "is forbidden"; a webhook:
# "denied the request"; a pod the API server cannot accept: "is invalid"). Anything else a FailedCreate
# says (a timeout, an API server unavailable) is passing: the Job controller tries again.
REFUSED = ("is forbidden", "denied the request", "is invalid")
WAITED_FOR = ("exceeded quota",)


def refusal(events: Iterable[Mapping[str, Any]]) -> str | None:
    """The API server's message of the latest FailedCreate Event that waiting will not cure, if any."""
    def when(event: Mapping[str, Any]) -> str:
        meta = event.get("metadata") or {}
        return str(event.get("lastTimestamp") or event.get("eventTime") or meta.get("creationTimestamp") or "")

    def final(message: str) -> bool:
        return any(r in message for r in REFUSED) and not any(w in message for w in WAITED_FOR)

    refused = [e for e in events if e.get("reason") == FAILED_CREATE and final(str(e.get("message") or ""))]
    if not refused:
        return None
    return str(max(refused, key=when).get("message") or "the Job controller could not create the pod")


def refusal_message(api_message: str) -> str:
    """What a node (or item) whose pod was refused says."""
    return (f"Kubernetes refused to create the node's pod: {api_message}. Fix the node's podTemplate "
            "(securityContext, resources, serviceAccountName) or the namespace's policy, then retry the execution")


def next_look(age: float) -> float:
    """Seconds from now until the Events of a Job `age` seconds old and still without a pod are
    listed again: at FIRST_LOOK, then at about twice the age, at most MAX_INTERVAL apart."""
    if age < FIRST_LOOK:
        return FIRST_LOOK - age
    return min(max(age, FIRST_LOOK), MAX_INTERVAL)


def due(age: float, looked_at_age: float | None) -> bool:
    """Whether the Events of a pod-less Job `age` seconds old are to be listed now, given the age at
    which they were last listed (None: never)."""
    if age < FIRST_LOOK:
        return False
    return looked_at_age is None or age >= looked_at_age + next_look(looked_at_age)
