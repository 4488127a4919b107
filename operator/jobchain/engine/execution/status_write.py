"""Status as it is written: the whole status replaced by one JSON patch, only when it changed.

Why the whole status and a JSON patch, not a merge patch: the API server's merge patch drops the
null members of what it puts in place, at every depth, and an output is data kept byte for byte
({"result": null} must stay). Why only when changed: a pass that decides nothing writes nothing.
"""

from __future__ import annotations

from typing import Any

from jobchain.api.models import ExecutionStatus


def dump_status(status: ExecutionStatus) -> dict[str, Any]:
    """Status as written (replacing the whole status): unset fields left out, outputs exactly as
    they are (a null inside an output is data and is kept)."""
    data = status.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"nodes", "workflowSpec"})
    # (`finally` only on finally nodes: 500 main nodes need not each say false)
    data["nodes"] = [n.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=None if n.finally_
                                  else {"finally_"}) for n in status.nodes]
    if status.workflowSpec is not None:
        data["workflowSpec"] = status.workflowSpec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def status_patch(old: ExecutionStatus, new: ExecutionStatus) -> list[dict[str, Any]] | None:
    """The JSON patch that writes `new` over `old` (the whole status), None when nothing changed."""
    data = dump_status(new)
    if data == dump_status(old):
        return None
    return [{"op": "add", "path": "/status", "value": data}]
