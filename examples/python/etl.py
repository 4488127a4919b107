"""A three-step ETL built with jobchain's Python SDK: extract -> transform -> load.

    python examples/python/etl.py -n NAMESPACE          # lint, submit, wait, print each node's output
    python examples/python/etl.py --yaml                # just print the Workflow as YAML

extract emits the `record` param (an object) as its output; transform doubles its rows and
carries the record along; load prints the note from the log. Values travel as data: the
note's `$`, quotes and unicode arrive byte for byte.
"""

from __future__ import annotations

import argparse
import json
import sys

from jobchain.sdk import Workflow, param

RECORD = {"note": "price: 5 $ and $HOME, \"double\" 'single' ünïcødé ✓", "rows": 3}


def build() -> Workflow:
    return (
        Workflow("etl", params=[param("record", RECORD)], image="busybox:1.36",
                 defaults={"timeoutSeconds": 120})
        .node("extract", script='printf \'%s\' "$(params.record)" > "$JOBCHAIN_OUTPUT"')
        .then("transform")
        .node("transform", script=(
            'printf \'{"rows": %d, "from": %s}\' $(( $(input.rows) * 2 )) "$JOBCHAIN_INPUT" > "$JOBCHAIN_OUTPUT"'))
        .then("load", when="output.rows > 0")
        .node("load", script='printf \'%s\' "$(nodes.extract.output.note)"', output={"from": "logs"})
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    parser.add_argument("--yaml", action="store_true", help="print the Workflow as YAML and stop")
    args = parser.parse_args(argv)
    workflow = build()
    if args.yaml:
        print(workflow.to_yaml(), end="")
        return 0
    problems = workflow.lint()
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    result = workflow.run(namespace=args.namespace, timeout=300)
    print(f"{result.name}: {result.phase} {result.reason}")
    for name, node in result.nodes.items():
        print(f"  {name}: {node.phase} {json.dumps(node.output, ensure_ascii=False)}")
    return 0 if result.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
