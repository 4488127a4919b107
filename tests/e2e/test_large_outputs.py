"""User story: a step writes a 300 KiB JSON result to its log; the next step gets it whole as the file
$JOBCHAIN_INPUT_FILE and a small key of it through $(input.KEY), a condition over it decides, and the
whole value is still there (jobchain get) once the pods are gone. A 2 MiB output fails its node,
saying why (docs: README "Outputs").
"""

from __future__ import annotations

import hashlib
import json

import pytest
from kubernetes import client

from tests.e2e.support import Objects, jobchain, nodes, wait_for, workflow

pytestmark = pytest.mark.usefixtures("operator")

BLOB = 300 * 1024
# What the producer prints: compact JSON, so the text the next node gets is the very same bytes.
PRODUCED = '{"small":"hi","n":7,"blob":"' + "a" * BLOB + '"}'
PRODUCE = (f"printf '{{\"small\":\"hi\",\"n\":7,\"blob\":\"'; head -c {BLOB} /dev/zero | tr '\\0' a; "
           "printf '\"}\\n'")
CONSUME = ('f="$JOBCHAIN_INPUT_FILE"; '
           'printf \'{"sha":"%s","bytes":%d,"small":"%s","env_bytes":%d}\' '
           '"$(sha256sum < "$f" | cut -d" " -f1)" "$(wc -c < "$f")" "$(input.small)" "${#JOBCHAIN_INPUT}" '
           '> "$JOBCHAIN_OUTPUT"')


def test_a_300_kib_output_reaches_the_next_node_whole_and_survives_its_pod(objects: Objects, kubeconfig: str,
                                                                           namespace: str) -> None:
    objects.create(workflow("large", [
        {"name": "produce", "script": PRODUCE, "output": {"from": "logs"},
         "next": [{"node": "consume", "type": "condition", "when": "size(output.blob) == 307200 && output.n == 7"},
                  {"node": "never", "type": "condition", "when": "size(output.blob) < 307200"}]},
        {"name": "consume", "script": CONSUME},
        {"name": "never", "script": "true"},
    ], defaults={"image": "busybox:1.36", "timeoutSeconds": 300}))  # the shared machine can be slow to start pods
    done = objects.run("large", timeout=480)
    status = done["status"]
    assert status["phase"] == "Succeeded", status
    result = nodes(done)
    produce, consume = result["produce"], result["consume"]
    ref = produce["outputRef"]
    assert ref["bytes"] == len(PRODUCED) and produce["outputTruncated"] is True
    assert isinstance(produce["output"], str) and PRODUCED.endswith(produce["output"]), "a preview: a log's end"
    assert consume["output"] == {"sha": hashlib.sha256(PRODUCED.encode()).hexdigest(), "bytes": len(PRODUCED),
                                 "small": "hi", "env_bytes": 0}, "the whole input as a file; JOBCHAIN_INPUT empty"
    assert result["never"]["phase"] == "Skipped", "the condition saw the whole blob"

    core = client.CoreV1Api(objects.core.api_client)
    cm = core.read_namespaced_config_map(ref["configMap"], namespace)
    assert cm.immutable is True and cm.metadata.owner_references[0].uid == done["metadata"]["uid"]
    assert cm.metadata.labels["jobchain.dev/node"] == "produce"

    name = done["metadata"]["name"]
    for job in objects.jobs(name):  # the pods (and Jobs) go; the output stays
        objects.batch.delete_namespaced_job(job.metadata.name, namespace, propagation_policy="Foreground")
    selector = f"jobchain.dev/execution={name}"
    wait_for(lambda: not core.list_namespaced_pod(namespace, label_selector=selector).items, timeout=120,
             what="the execution's pods to be deleted")
    shown = jobchain(kubeconfig, namespace, "get", name, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    got = {n["name"]: n for n in json.loads(shown.stdout)["status"]["nodes"]}
    assert json.dumps(got["produce"]["output"], separators=(",", ":")) == PRODUCED, "jobchain get shows it whole"
    logs = jobchain(kubeconfig, namespace, "logs", name, "--node", "produce")
    assert logs.returncode == 0, logs.stderr
    note, shown_output = logs.stdout.splitlines()
    assert "is gone" in note and "truncated" not in note, note
    assert json.loads(shown_output.removeprefix("[produce] ")) == json.loads(PRODUCED), "jobchain logs shows it whole"
    print(f"\n300 KiB output: kept in ConfigMap {ref['configMap']} ({ref['bytes']} bytes); the next node's "
          f"file had sha256 {consume['output']['sha'][:16]}... ({consume['output']['bytes']} bytes) = the producer's; "
          f"$(input.small)={consume['output']['small']}; jobchain get after the pods were deleted: whole")


def test_a_2_mib_output_fails_its_node_saying_why(objects: Objects) -> None:
    objects.create(workflow("huge", [
        {"name": "produce", "script": "head -c 2097152 /dev/zero | tr '\\0' b; echo", "output": {"from": "logs"},
         "next": [{"node": "after"}]},
        {"name": "after", "script": "true"},
    ]))
    done = objects.run("huge", timeout=240)
    result = nodes(done)
    assert done["status"]["phase"] == "Failed", done["status"]
    produce = result["produce"]
    assert produce["phase"] == "Failed" and produce["outputTruncated"] is True and "outputRef" not in produce
    assert "output is over the 1047552 bytes (1 MiB) a node's output may be" in produce["message"], produce["message"]
    assert result["after"]["phase"] == "Skipped"
    print(f"\n2 MiB output: node Failed: {produce['message']}")
