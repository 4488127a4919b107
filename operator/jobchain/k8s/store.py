"""In-memory copies of the executions, Jobs and pods the operator watches, kept current by its watches.

Why: every reconcile pass needs the execution, its Jobs and their pods. Reading them from the
API server (a GET and two label-selector LISTs per pass, several passes per node) is what an API
server's operators bill a controller for, while the operator already receives every change of
these objects on its watches. The handlers put each object they receive here; passes read here.

Three rules keep the copies from misleading a pass:
- Newer wins: an object is replaced only by a copy with a resourceVersion at least as new (a
  watch event that arrives after our own write's response must not bring an older status back).
- Our own writes are written through: the Job a pass created and the status it wrote are put
  here at once, so the next pass never works from a state older than what it wrote itself.
- Deleted is deleted: a dropped execution's uid is kept for a while (a tombstone), and no copy of
  that uid is taken back (a pass whose status write returns after the DELETED event was handled
  would otherwise bring it back for good: its passes 404, its queue slot stays taken). A DELETED
  event drops only the uid it names: a re-created execution of the same name stays. Across
  uids of one name (a Job deleted and re-created), the newer resourceVersion wins too.
- Cold start: the watches deliver in no set order after a start, so before the first pass of a
  started execution its namespace's Jobs and pods are listed into the store once (`mark_warm`,
  `k8s/observe.py`), and a Running node's Job the store lacks is asked for by name.

Jobs and pods are trimmed to what the operator reads (`trim_job`, `trim_pod`), with recurring
strings shared, so that thousands of them cost little memory. An execution's bulk (its workflow,
inline and snapshot, and its nodes' status) is kept packed (`pack_execution`: compact JSON,
compressed), and unpacked only for the pass that reads it: a 500-node workflow within every
limit is ~12 MiB as Python objects but ~0.1 MiB packed, so one namespace's executions cannot
fill the operator's memory limit for all (docs/performance.md).
The store is written from the event loop and read from the reconcile threads: one lock.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import zlib
from collections.abc import Iterable
from typing import Any

from jobchain.api.vocabulary import ANNOTATION_EXECUTION, ANNOTATION_OUTPUT, CONTAINER, LABEL_EXECUTION, PREFIX

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)

_META = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
         "deletionTimestamp", "labels", "ownerReferences")
_OWN_LABELS = PREFIX
_OWNER = ("kind", "uid", "controller")
_JOB_STATUS = ("succeeded", "failed", "completionTime")
_CONDITION = ("type", "status", "reason", "message")
_TERMINATED = ("exitCode", "signal", "reason", "message", "finishedAt")
# How long a deleted execution's uid is refused: far longer than a pass (a write's response after
# the DELETED event) and than kopf's batching of one object's events.
TOMBSTONE_SECONDS = 3600.0


def rv_newer_or_same(new: str | None, old: str | None) -> bool:
    """Whether resourceVersion `new` is not older than `old`.

    resourceVersions are opaque by contract, but every API server backed by etcd uses the etcd
    revision, an integer that only grows; anything else is taken as newer (never stuck on a copy).
    """
    if not old or not new:
        return True
    if new.isdigit() and old.isdigit():
        return int(new) >= int(old)
    return True


def _meta(obj: Obj, annotations: Iterable[str] = ()) -> Obj:
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in _META if k in meta}
    # Only jobchain's own labels are read (the node, the execution); the Job controller's four
    # (controller-uid, job-name, twice each) on every pod are not.
    labels = {_i(k): v for k, v in (meta.get("labels") or {}).items() if k.startswith(_OWN_LABELS)}
    if "labels" in kept:
        kept["labels"] = labels
    if "ownerReferences" in kept:  # who controls it (kind, uid), nothing else
        kept["ownerReferences"] = [{k: _i(ref[k]) if k == "kind" else ref[k] for k in _OWNER if k in ref}
                                   for ref in meta["ownerReferences"]]
    notes = meta.get("annotations") or {}
    picked = {k: notes[k] for k in annotations if k in notes}
    if picked:
        kept["annotations"] = picked
    return kept


def _i(value: Any) -> Any:
    """A string shared by every copy that holds it (phases, condition types, kinds recur thousands of times)."""
    return sys.intern(value) if isinstance(value, str) else value


def trim_job(job: Obj) -> Obj:
    """What the operator reads of a Job: identity, owner, backoffLimit, verdict (conditions, counts)."""
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    kept = {k: status[k] for k in _JOB_STATUS if k in status}
    if "conditions" in status:
        kept["conditions"] = [{k: _i(c[k]) for k in _CONDITION if k in c} for c in status["conditions"] or []]
    return {
        "metadata": _meta(job, (ANNOTATION_EXECUTION,)),
        "spec": {"backoffLimit": spec.get("backoffLimit")},
        "status": kept,
    }


def trim_pod(pod: Obj) -> Obj:
    """What the operator reads of a pod: identity, owner, phase, the node container's state
    (terminated: exit code, reason, message, finish time; otherwise only which state it is in)."""
    status = pod.get("status") or {}
    kept_status: Obj = {k: _i(status[k]) for k in ("phase", "reason", "message") if k in status}
    containers = [{"name": CONTAINER, "state": _state(s.get("state") or {})}
                  for s in status.get("containerStatuses") or [] if s.get("name") == CONTAINER]
    if containers:
        kept_status["containerStatuses"] = containers
    return {"metadata": _meta(pod, (ANNOTATION_OUTPUT, ANNOTATION_EXECUTION)), "status": kept_status}


def _state(state: Obj) -> Obj:
    kept: Obj = {}
    for name, detail in state.items():
        if name == "terminated" and isinstance(detail, dict):
            kept[name] = {k: _i(detail[k]) if k == "reason" else detail[k] for k in _TERMINATED if k in detail}
        else:
            kept[_i(name)] = {}  # running, waiting: which one is all that is read
    return kept


# An execution's parts a pass reads whole but nothing else reads: kept compressed. What lists of
# executions read (queues, schedules: metadata, spec.workflowRef/cancel, status.phase, ...) stays.
PACKED_PARTS = (("spec", "workflow"), ("status", "workflowSpec"), ("status", "nodes"))
# Stands in for a packed part in `Store.executions_in`: present (not None), as the part is.
PACKED: Obj = {"jobchain.dev/packed": "read the execution with Store.execution() for this part"}
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"  # kubectl apply's copy of the spec


def pack_execution(obj: Obj) -> tuple[Obj, bytes]:
    """(the execution without its bulk, the bulk as compressed JSON); `unpack_execution` reverses it.

    Values go through JSON unchanged (they came as JSON); managedFields and kubectl's
    last-applied copy are never read and not kept."""
    light, packed, _size = pack_execution_sized(obj)
    return light, packed


def pack_execution_sized(obj: Obj) -> tuple[Obj, bytes, int]:
    """`pack_execution`, and the size of the bulk as JSON text (what a pass unpacks and works from)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    if _LAST_APPLIED in (meta.get("annotations") or {}):
        meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != _LAST_APPLIED}
    light: Obj = {**obj, "metadata": meta}
    bulk: Obj = {}
    for part, field in PACKED_PARTS:
        section = light.get(part)
        if isinstance(section, dict) and section.get(field) is not None:
            bulk.setdefault(part, {})[field] = section[field]
            light[part] = {**section, field: PACKED}
    if not bulk:
        return light, b"", 0
    text = json.dumps(bulk, separators=(",", ":")).encode()
    return light, zlib.compress(text, 1), len(text)


def unpack_execution(light: Obj, packed: bytes) -> Obj:
    if not packed:
        return dict(light)
    bulk: Obj = json.loads(zlib.decompress(packed))
    obj = dict(light)
    for part, fields in bulk.items():
        obj[part] = {**obj[part], **fields}
    return obj


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def execution_of(obj: Obj) -> str | None:
    """The name of the execution a Job or pod belongs to (annotation: labels are cut at 63)."""
    meta = obj.get("metadata") or {}
    name = (meta.get("annotations") or {}).get(ANNOTATION_EXECUTION)
    if name:
        return str(name)
    label = (meta.get("labels") or {}).get(LABEL_EXECUTION)
    return str(label) if label else None


def has_owner(obj: Obj, uid: str) -> bool:
    """Whether one of the object's ownerReferences is `uid` (a Job of this execution, not of an older
    one of the same name)."""
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def controller_uid(obj: Obj, kind: str) -> str | None:
    """The uid of the object's controlling owner of `kind` (a pod's Job), if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return str(ref.get("uid"))
    return None


def node_terminated(pod: Obj) -> bool:
    """Whether the node's container has terminated or the pod has failed (evicted, init failed)."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return True
    return any(s.get("name") == CONTAINER and (s.get("state") or {}).get("terminated")
               for s in status.get("containerStatuses") or [])


class Store:
    def __init__(self, clock: Any = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._executions: dict[Key, tuple[Obj, bytes]] = {}  # (light, packed): pack_execution
        self._bulk: dict[Key, int] = {}  # bytes of each execution's packed parts as JSON text
        self._own_versions: dict[Key, str] = {}  # resourceVersion of our last status write
        self._deleted: dict[str, float] = {}  # uid of a dropped execution -> monotonic time dropped
        self._jobs: dict[Key, Obj] = {}
        self._jobs_of: dict[Key, set[str]] = {}  # (namespace, execution) -> Job names
        self._pods: dict[Key, Obj] = {}
        self._pods_of: dict[str, set[Key]] = {}  # Job uid -> pods
        self._finished_seen: dict[str, float] = {}  # pod uid -> monotonic time first seen finished
        self._schedules: dict[Key, Obj] = {}
        self._warm: set[str] = set()  # namespaces whose Jobs and pods were listed once

    def is_warm(self, namespace: str) -> bool:
        with self._lock:
            return namespace in self._warm

    def mark_warm(self, namespace: str) -> None:
        with self._lock:
            self._warm.add(namespace)

    # ---- executions --------------------------------------------------------------------
    def put_execution(self, obj: Obj, own: bool = False) -> bool:
        """Keeps the execution unless the copy held is newer. Returns whether it is stored.

        `own`: the response of our own status write (its watch event will need no pass).
        """
        key = _key(obj)
        with self._lock:
            if _uid(obj) in self._deleted:
                return False
            held = self._executions.get(key)
            if held is not None and not rv_newer_or_same(_rv(obj), _rv(held[0])):
                return False
        light, packed, size = pack_execution_sized(obj)  # outside the lock: compressing takes milliseconds
        with self._lock:
            if _uid(obj) in self._deleted:
                return False  # deleted meanwhile
            held = self._executions.get(key)
            if held is not None and not rv_newer_or_same(_rv(obj), _rv(held[0])):
                return False  # a newer copy came meanwhile
            self._executions[key] = (light, packed)
            self._bulk[key] = size
            if own:
                self._own_versions[key] = _rv(obj) or ""
            return True

    def is_own_write(self, obj: Obj) -> bool:
        """Whether this copy of the execution is the one our last status write produced."""
        with self._lock:
            rv = _rv(obj)
            return bool(rv) and self._own_versions.get(_key(obj)) == rv

    def execution(self, namespace: str, name: str) -> Obj | None:
        """The whole execution (a copy: what a pass changes in it is not the store's)."""
        with self._lock:
            held = self._executions.get((namespace, name))
        return None if held is None else unpack_execution(*held)

    def executions_in(self, namespace: str) -> list[Obj]:
        """Every execution of the namespace (for a schedule's runs and a workflow's queue), without
        their packed parts (PACKED stands in for each: it is there, read it with `execution`)."""
        with self._lock:
            return [light for (ns, _), (light, _packed) in self._executions.items() if ns == namespace]

    def drop_execution(self, namespace: str, name: str, uid: str | None = None) -> None:
        """Forgets the execution of this uid (None: whichever is held), for good.

        An execution of another uid held under the name (re-created, its ADDED event handled
        before the old one's DELETED) is kept."""
        key = (namespace, name)
        with self._lock:
            now = self._clock()
            self._deleted = {u: at for u, at in self._deleted.items() if now - at < TOMBSTONE_SECONDS}
            held = self._executions.get(key)
            if uid:
                self._deleted[uid] = now
            held_uid = _uid(held[0]) if held is not None else None
            if held is None or (uid and held_uid and held_uid != uid):
                return
            if held_uid:
                self._deleted[held_uid] = now
            del self._executions[key]
            self._bulk.pop(key, None)
            self._own_versions.pop(key, None)

    def execution_bytes(self, namespace: str, name: str) -> int:
        """The size of the execution's bulk (workflow, snapshot, nodes' status) as JSON text; 0 if
        not held. What a pass of it holds grows with it (`controller.handlers.pass_cost`)."""
        with self._lock:
            return self._bulk.get((namespace, name), 0)

    # ---- schedules ---------------------------------------------------------------------
    def put_schedule(self, obj: Obj) -> None:
        key = _key(obj)
        with self._lock:
            held = self._schedules.get(key)
            if held is None or rv_newer_or_same(_rv(obj), _rv(held)):
                self._schedules[key] = obj

    def schedule(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._schedules.get((namespace, name))

    def drop_schedule(self, namespace: str, name: str) -> None:
        with self._lock:
            self._schedules.pop((namespace, name), None)

    # ---- Jobs --------------------------------------------------------------------------
    def put_job(self, job: Obj) -> bool:
        """Keeps the Job unless the copy held is newer. Returns whether its verdict changed
        (conditions, succeeded/failed counts): only then can a pass decide something new."""
        job = trim_job(job)
        key = _key(job)
        owner = execution_of(job)
        with self._lock:
            held = self._jobs.get(key)
            if held is not None and not rv_newer_or_same(_rv(job), _rv(held)):
                return False  # also a late event of an older Job of this name, re-created since
            self._jobs[key] = job
            if owner:
                self._jobs_of.setdefault((key[0], owner), set()).add(key[1])
            return held is None or _verdict(held) != _verdict(job)

    def drop_job(self, job: Obj) -> None:
        key = _key(job)
        with self._lock:
            held = self._jobs.get(key)
            uid = (job.get("metadata") or {}).get("uid")
            if held is None or (uid and held["metadata"].get("uid") != uid):
                return  # a newer Job of the same name replaced it
            del self._jobs[key]
            owner = execution_of(held)
            names = self._jobs_of.get((key[0], owner or ""))
            if names is not None:
                names.discard(key[1])
                if not names:
                    del self._jobs_of[(key[0], owner or "")]

    def jobs(self, namespace: str, execution: str) -> list[Obj]:
        with self._lock:
            names = self._jobs_of.get((namespace, execution)) or set()
            return [self._jobs[(namespace, n)] for n in sorted(names) if (namespace, n) in self._jobs]

    # ---- pods --------------------------------------------------------------------------
    def put_pod(self, pod: Obj) -> bool:
        """Keeps the pod unless the copy held is newer. Returns whether the node's container is
        newly seen terminated (or the pod newly failed): the one pod change a pass acts on."""
        pod = trim_pod(pod)
        key = _key(pod)
        job_uid = controller_uid(pod, "Job")
        uid = pod["metadata"].get("uid") or ""
        with self._lock:
            held = self._pods.get(key)
            if held is not None and not rv_newer_or_same(_rv(pod), _rv(held)):
                return False
            self._pods[key] = pod
            if job_uid:
                self._pods_of.setdefault(job_uid, set()).add(key)
            if not node_terminated(pod):
                return False
            if uid and uid not in self._finished_seen:
                self._finished_seen[uid] = self._clock()
            return held is None or held["metadata"].get("uid") != uid or not node_terminated(held)

    def drop_pod(self, pod: Obj) -> None:
        key = _key(pod)
        with self._lock:
            held = self._pods.get(key)
            uid = (pod.get("metadata") or {}).get("uid")
            if held is None or (uid and held["metadata"].get("uid") != uid):
                return
            del self._pods[key]
            self._finished_seen.pop(held["metadata"].get("uid") or "", None)
            job_uid = controller_uid(held, "Job")
            keys = self._pods_of.get(job_uid or "")
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._pods_of[job_uid or ""]

    def pods(self, job_uid: str) -> list[Obj]:
        """The pods controlled by the Job of this uid (no other pod counts for it), oldest first."""
        with self._lock:
            pods = [self._pods[k] for k in self._pods_of.get(job_uid) or () if k in self._pods]
        return sorted(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))

    def finished_seen(self, pod_uid: str) -> float | None:
        """When (monotonic clock) the operator first received the pod as finished."""
        with self._lock:
            return self._finished_seen.get(pod_uid)

    def sizes(self) -> dict[str, int]:
        with self._lock:
            return {"executions": len(self._executions), "jobs": len(self._jobs), "pods": len(self._pods)}


def _verdict(job: Obj) -> tuple[Any, ...]:
    status = job.get("status") or {}
    conditions = sorted(str(c.get("type")) for c in status.get("conditions") or [] if c.get("status") == "True")
    return tuple(conditions), status.get("succeeded"), status.get("failed")


def _uid(obj: Obj) -> str | None:
    value = (obj.get("metadata") or {}).get("uid")
    return str(value) if value else None


def _rv(obj: Obj) -> str | None:
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return str(value) if value else None
