"""Coordination between executions and replicas: leader election and workflow admission (the queue)."""
