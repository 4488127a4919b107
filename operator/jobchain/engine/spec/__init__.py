"""The workflow spec: validation, the graph, `$(...)` references, rendering a node's Job, the shell
scanner, CEL, secret params and outputs. Depends on nothing else in the engine."""
