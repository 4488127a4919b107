"""Failed forEach items keep the execution's status within its budget, however many there are.

Each failed item keeps a message (an exit code, its log's last lines). With one fixed cap per item,
5,000 failed items with long logs made a status of about 2 MB: from about 3,900 on, the API server
refused every status write and the execution stayed Running for ever. Item messages share one
budget, each getting less the more items the node has (as item previews do).
"""

from __future__ import annotations

import json
from datetime import timedelta

from jobchain.engine.execution.planner import plan
from jobchain.engine.execution.status import ITEM_MESSAGE_BUDGET, item_message_limit
from jobchain.engine.execution.status_write import dump_status

from .builders import T0, FakeOperatorCluster, execution, job, node, node_status, spec, with_status

ETCD_OBJECT_LIMIT = 1536 * 1024  # the API server refuses a larger object (etcd's request limit)
STATUS_BUDGET = 1024 * 1024  # the project's own: status stays well under the object limit (test_fuzz)
LOG_TAIL = "\n".join(f"line {i}: " + "e" * 90 for i in range(40))  # ~4 KiB, as the observer reads a log's end


def test_five_thousand_failed_items_with_long_logs_keep_status_under_the_object_limit() -> None:
    wf = spec(node("list", "each"), node("each", forEach="input", maxItems=5000, script="exit 1"), parallelism=100)
    ex = execution(wf)
    cluster = FakeOperatorCluster()
    cluster.apply(plan(ex, cluster.observed(), T0))
    cluster.finish("list", "Succeeded", json.dumps(list(range(5000))), T0 + timedelta(seconds=1))
    first = plan(ex, cluster.observed(), T0 + timedelta(seconds=2))
    cluster.apply(first)
    each = node_status(first.status, "each")
    assert each.items is not None and each.items.total == 5000
    # Every item's Job fails with a long log (a pass after lost writes sees them all at once).
    done = T0 + timedelta(seconds=5)
    seen = {f"each#{i}": job(f"each#{i}", "Failed", exit_code=1, finished_at=done,
                             message=f"exit code 1; last log lines:\n{LOG_TAIL}") for i in range(5000)}
    last = plan(with_status(ex, first.status), seen, done + timedelta(seconds=1))
    each = node_status(last.status, "each")
    assert each.phase == "Failed" and each.items is not None and each.items.failed == 5000
    size = len(json.dumps(dump_status(last.status), separators=(",", ":")).encode())
    assert size < STATUS_BUDGET < ETCD_OBJECT_LIMIT, size
    # Each item still says why it failed, within its share of the budget.
    limit = item_message_limit(5000)
    assert limit * 5000 <= ITEM_MESSAGE_BUDGET
    for entry in each.itemResults or []:
        assert entry.message and entry.message.startswith("exit code 1")
        assert len(entry.message.encode()) <= limit


def test_a_few_failed_items_keep_a_long_message() -> None:
    assert item_message_limit(3) == item_message_limit(1) >= 256
    assert item_message_limit(5000) < item_message_limit(100) <= item_message_limit(3)
