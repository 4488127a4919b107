"""At start, whether the admission policies that bound steps and runs are in force, said loudly
when they are not (an error log line, an Event on the operator's pod, and the metric
jobchain_admission_policy_in_force{policy} at 0).

Why at start and not refused: the operator works without them (a cluster before Kubernetes 1.30,
or an install with stepPolicy.enabled=false), but then a step bound to jobchain-step can rewrite
any pod of its namespace, and anyone who may create an execution may run it as any
ServiceAccount of the namespace (docs/security.md). An administrator must learn that from the
operator, not from an incident.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from jobchain.api.vocabulary import EVENT_COMPONENT
from jobchain.controller.metrics import ADMISSION_POLICY
from jobchain.k8s.api import Builtins

log = logging.getLogger(__name__)

# The shipped policies (manifests/base/step-policy.yaml, run-policy.yaml; the chart's stepPolicy and
# runPolicy), each with a binding of the same name. JOBCHAIN_ADMISSION_POLICIES names others.
POLICIES = ("jobchain-step-own-pod", "jobchain-run-rights")
MIN_MINOR = 30  # ValidatingAdmissionPolicy v1 and pod-bound token claims
Found = tuple[dict[str, Any] | None, dict[str, Any] | None]  # (policy, binding); None: not there


def policy_problems(name: str, policy: dict[str, Any] | None, binding: dict[str, Any] | None) -> list[str]:
    """What keeps one policy from being in force; empty when it is."""
    fix = ("install it (manifests/base, or the chart with stepPolicy.enabled and runPolicy.enabled; "
           f"Kubernetes 1.{MIN_MINOR}+); see docs/security.md")
    if policy is None:
        return [f"ValidatingAdmissionPolicy {name} is not installed: {fix}"]
    problems = []
    spec = binding.get("spec") or {} if binding is not None else {}
    if binding is None or spec.get("policyName") != name or "Deny" not in (spec.get("validationActions") or []):
        problems.append(f"ValidatingAdmissionPolicy {name} is not bound with validationActions [Deny] "
                        f"(ValidatingAdmissionPolicyBinding {name}): it refuses nothing; {fix}")
    warnings = ((policy.get("status") or {}).get("typeChecking") or {}).get("expressionWarnings") or []
    for warning in warnings:
        problems.append(f"ValidatingAdmissionPolicy {name}: the API server reports {warning.get('fieldRef')}: "
                        f"{warning.get('warning')}")
    return problems


def version_problem(version: Mapping[str, Any]) -> str | None:
    minor = "".join(ch for ch in str(version.get("minor", "")) if ch.isdigit())
    if str(version.get("major")) == "1" and minor and int(minor) < MIN_MINOR:
        return (f"Kubernetes {version.get('gitVersion') or '1.' + minor} has no ValidatingAdmissionPolicy v1 with "
                f"pod-bound tokens (1.{MIN_MINOR}+): steps and runs are bounded by RBAC alone (docs/security.md)")
    return None


def _read(call: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    try:
        return call()
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def check(api: Any, names: tuple[str, ...] | None = None) -> list[str]:
    """Reads the policies and reports; returns the problems (also logged, counted and posted)."""
    builtins = Builtins(api)
    names = names or tuple(n for n in os.environ.get("JOBCHAIN_ADMISSION_POLICIES", "").split(",") if n) or POLICIES
    problems: list[str] = []
    try:
        problem = version_problem(builtins.server_version())
        if problem:
            problems.append(problem)
    except Exception as exc:  # the check must never stop the operator
        log.warning("cannot read the Kubernetes version: %s", exc)
    for name in names:
        try:
            found = policy_problems(
                name, _read(lambda name=name: builtins.read_validating_admission_policy(name)),  # type: ignore[misc]
                _read(lambda name=name: builtins.read_validating_admission_policy_binding(name)))  # type: ignore[misc]
        except Exception as exc:
            found = [f"cannot tell whether ValidatingAdmissionPolicy {name} is in force ({exc}); the operator "
                     "needs get on validatingadmissionpolicies and validatingadmissionpolicybindings"]
        ADMISSION_POLICY.labels(policy=name).set(0 if found else 1)
        problems.extend(found)
    for problem in problems:
        log.error("SECURITY: %s", problem)
    if problems:
        _post_event(builtins, problems)
    else:
        log.info("admission policies in force: %s", ", ".join(names))
    return problems


def _post_event(builtins: Builtins, problems: list[str]) -> None:
    """A Warning Event on the operator's own pod (JOBCHAIN_POD_NAME, from the downward API)."""
    namespace, pod = os.environ.get("JOBCHAIN_OPERATOR_NAMESPACE"), os.environ.get("JOBCHAIN_POD_NAME")
    if not (namespace and pod):
        return
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        builtins.create_namespaced_event(namespace, {
            "metadata": {"generateName": f"{pod}.", "namespace": namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": namespace},
            "reason": "AdmissionPolicyMissing", "type": "Warning", "message": "; ".join(problems)[:1024],
            "source": {"component": "jobchain"}, "reportingComponent": EVENT_COMPONENT,
            "reportingInstance": pod[:128], "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        })
    except Exception as exc:
        log.warning("cannot post the AdmissionPolicyMissing event: %s", exc)
