"""Timestamps as status stores them (RFC 3339, UTC, "Z"), and durations as kubectl shows them."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    """Reads RFC 3339 timestamps ("Z" or an offset); None for empty or unreadable ones."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def utc_stamp(value: object) -> str | None:
    """A Kubernetes timestamp in the one format status uses (RFC 3339, UTC, "Z"); None if unreadable."""
    moment = parse_time(str(value)) if value else None
    return iso(moment) if moment else None


def format_duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
