"""What the RBAC tests share: the Kubernetes client methods read as (API group, resource, verb)
rights, the rights a list of RBAC rules grants, and the two-way comparison of the two
(tests/unit/test_rbac_calls.py for the operator, test_dashboard_rbac.py for the dashboard).
"""

from __future__ import annotations

import re
from typing import Any

Right = tuple[str, str, str]  # (API group, resource, verb)

# The kind in a client method's name -> (API group, resource).
KINDS: dict[str, tuple[str, str]] = {
    "job": ("batch", "jobs"),
    "pod": ("", "pods"),
    "pod_log": ("", "pods/log"),
    "event": ("", "events"),
    "secret": ("", "secrets"),
    "lease": ("coordination.k8s.io", "leases"),
    "config_map": ("", "configmaps"),
    "validating_admission_policy": ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
    "validating_admission_policy_binding": ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
}
VERBS = {"create": "create", "read": "get", "get": "get", "list": "list", "patch": "patch", "replace": "update",
         "delete": "delete"}
CLIENT_METHOD = re.compile(r"^(create|read|list|patch|replace|delete)_namespaced_(\w+?)(_status)?$"
                           r"|^(list)_(\w+?)_for_all_namespaces()$")
# Cluster-scoped objects read by name (the admission policies, at start).
CLUSTER_METHOD = re.compile(r"^(read)_(validating_admission_policy(?:_binding)?)$")
CUSTOM_METHOD = re.compile(r"^(get|list|patch|replace|delete|create)_namespaced_custom_object(_status)?$")
PLURAL_ARG = 3  # (group, version, namespace, plural, ...)


def granted(rules: list[dict[str, Any]]) -> set[Right]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def compare(used: set[Right], rights: set[Right]) -> tuple[set[Right], set[Right]]:
    """(missing: called but not granted, unused: granted but never called)."""
    return used - rights, rights - used
