"""`jobchain retry OLD --from NODE -p KEY=VALUE` on a real cluster: a Succeeded run rerun from a middle
node with a changed param; the node before it is reused, it and the one after run again with the new value."""

from __future__ import annotations

import pytest

from tests.e2e.support import GROUP, VERSION, Objects, jobchain, no_traceback, nodes, workflow

pytestmark = pytest.mark.usefixtures("current_crds", "operator")

SAYS = "printf '{\"node\": \"%s\", \"v\": \"%s\", \"by\": \"%s\"}' {name} '$(params.v)' '$(execution.name)' " \
       "> $JOBCHAIN_OUTPUT"
ABC = workflow("abc", [
    {"name": "a", "script": SAYS.replace("{name}", "a"), "next": [{"node": "b"}]},
    {"name": "b", "script": SAYS.replace("{name}", "b"), "next": [{"node": "c"}]},
    {"name": "c", "script": SAYS.replace("{name}", "c")},
], params=[{"name": "v", "default": "1"}])


def test_retry_from_b_with_v_2_reuses_a_and_reruns_b_and_c_with_it(kubeconfig: str, namespace: str,
                                                                    objects: Objects) -> None:
    objects.create(ABC)
    first = objects.run("abc", {"v": "1"}, timeout=300)
    old_name = first["metadata"]["name"]
    assert first["status"]["phase"] == "Succeeded", first["status"]
    for name, n in nodes(first).items():
        print(f"{old_name} {name}: {n['phase']} output={n['output']}")

    result = jobchain(kubeconfig, namespace, "retry", old_name, "--from", "b", "-p", "v=2", "--wait", timeout=300)
    no_traceback(result)
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    [new] = [e for e in objects.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflowexecutions")["items"]
        if (e["spec"].get("resumeFrom") or {}).get("name") == old_name]
    new_name = new["metadata"]["name"]
    retried = objects.execution(new_name)
    status = retried["status"]
    print(f"{new_name}: phase={status['phase']} params={status['params']} "
          f"resumedFrom.params={status['resumedFrom']['params']} resumedFrom.node={status['resumedFrom']['node']}")
    done = nodes(retried)
    for name, n in done.items():
        print(f"{new_name} {name}: {n['phase']} reused={n.get('reused', False)} output={n['output']}")
    jobs = sorted(j.metadata.labels["jobchain.dev/node"] for j in objects.jobs(new_name))
    print(f"Jobs of {new_name}: {jobs}")

    assert status["phase"] == "Succeeded"
    assert done["a"]["reused"] is True and done["a"]["output"] == {"node": "a", "v": "1", "by": old_name}
    assert done["b"]["output"] == {"node": "b", "v": "2", "by": new_name} and not done["b"].get("reused")
    assert done["c"]["output"] == {"node": "c", "v": "2", "by": new_name} and not done["c"].get("reused")
    assert jobs == ["b", "c"]  # exactly one new Job each, none for a
    assert status["params"] == {"v": "2"} and status["resumedFrom"]["params"] == {"v": "1"}

    unknown = jobchain(kubeconfig, namespace, "retry", old_name, "--from", "zz")
    no_traceback(unknown)
    print(unknown.stderr)
    assert unknown.returncode == 3 and "'zz' is not a node" in unknown.stderr and "a, b, c" in unknown.stderr
