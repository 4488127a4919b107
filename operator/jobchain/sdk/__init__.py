"""jobchain.sdk: build Workflows in Python, lint them with `jobchain lint`'s checks, run them.

    from jobchain.sdk import Workflow, param

    wf = (Workflow("etl", params=[param("rows", 10)], image="busybox:1.36")
          .node("extract", script="echo '{\\"rows\\": $(params.rows)}' > /dev/termination-log")
          .then("load")
          .node("load", script="..."))
    result = wf.run(namespace="team-a", params={"rows": 20}, timeout=300)
    result.nodes["extract"].output  # {"rows": 20}

Nothing here re-implements a rule: the models are `jobchain.api.models`, lint is the CLI's
`lint_documents`, and the cluster calls are the CLI's client (same kubeconfig, same errors).
See docs/python.md.
"""

from jobchain.api.models import Approval, Edge, EnvVar, Node, Param
from jobchain.sdk.builder import Problem, Workflow, param
from jobchain.sdk.errors import ClusterError, InvalidWorkflow, SdkError, WaitTimeout
from jobchain.sdk.runs import NodeResult, Result, Submitted

__all__ = [
    "Approval",
    "ClusterError",
    "Edge",
    "EnvVar",
    "InvalidWorkflow",
    "Node",
    "NodeResult",
    "Param",
    "Problem",
    "Result",
    "SdkError",
    "Submitted",
    "WaitTimeout",
    "Workflow",
    "param",
]
