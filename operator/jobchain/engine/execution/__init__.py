"""The execution pass: from an execution's spec, status and observed Jobs, what to do next and the status
that results (planner, forEach items, status functions, conditions, lifecycle, resume, snapshot, events)."""
