"""The maxima of user input: one table, used by the models (so by the CRD schema and lint) and the engine.

Why limits at all: a Workflow is input from anyone who may create one in any namespace, and
one operator serves every namespace. Each bound keeps the work the operator does for one
object small (validation, CEL, substitution are linear in these sizes), and the schema
refuses what is over them at `kubectl apply`, with the same numbers `jobchain lint` uses.
The README's table of limits lists them for users; keep both in step.
"""

from __future__ import annotations

MAX_NODES = 500  # nodes of one workflow
MAX_FINALLY_NODES = 50  # finally nodes of one workflow
MAX_PARAMS = 100  # declared params of a workflow; params set by an execution
MAX_EDGES = 100  # `next` edges of one node
MAX_ENV = 100  # env entries of one node
MAX_COMMAND = 100  # command items
MAX_ARGS = 200  # args items
MAX_WHEN = 1024  # characters of one `when` (CEL)
MAX_WHEN_TOTAL = 65536  # characters of all `when`s of one workflow together (compiling costs ~5 us a character)
MAX_TEXT = 65536  # characters of a script, one command or args item, one env value
MAX_PARAM_VALUE = 8192  # characters of a param's default, or of a value an execution sets
MAX_DESCRIPTION = 1024  # characters of a param's description
MAX_IMAGE = 1024  # characters of an image reference
MAX_NAME = 253  # characters of an env name, a ServiceAccount or Workflow name
MAX_SECONDS = 2**31 - 1  # timeoutSeconds, ttlSecondsAfterFinished (int32, as Kubernetes' own durations)

# Linux refuses one argument or environment string longer than this (MAX_ARG_STRLEN, 32 pages,
# counting the final NUL): a script, a command/args item or an env value over it could never start.
MAX_ARG_BYTES = 131071

# CEL cost, in evaluation steps (about 5 microseconds each with cel-python here): one
# evaluation of a `when` in a running execution, and all the trial evaluations that
# validating one workflow makes. Steps, not seconds, so that the same input always gets the
# same answer, however busy the operator is.
CEL_EVAL_STEPS = 20_000
VALIDATION_CEL_STEPS = 100_000
# All the evaluations of one planning pass together: once spent, the edges left are decided by the
# next pass (woken at once), so that one execution with 100 costly edges (10 s of CEL) cannot hold
# the operator's thread for all the others. Steps make it deterministic; the time ceiling guards a
# slow or loaded machine (a pass stops evaluating after it, whatever the steps say).
CEL_PASS_STEPS = 100_000
CEL_PASS_SECONDS = 0.5

# YAML read by the CLI (`jobchain lint`, `run FILE`, `graph FILE`).
MAX_YAML_DEPTH = 100  # nesting of mappings and sequences
MAX_YAML_VALUES = 200_000  # values after expanding aliases (an etcd object holds at most 1.5 MiB)
MAX_INT_DIGITS = 100  # digits of an integer literal
