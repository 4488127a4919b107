"""Schedules: cron expressions and what a WorkflowSchedule should do now."""
