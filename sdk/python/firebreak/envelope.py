"""The job envelope (schemas/envelope.schema.json), typed."""
from datetime import datetime, timezone
from typing import Any, Dict, Optional


def parse_timestamp(text: str) -> float:
    """'2026-11-27T20:00:00.000Z' -> Unix seconds."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


class Envelope:
    """One job's envelope; `raw` is the object as received (fields this version does not
    know included)."""

    __slots__ = ("id", "type", "source", "dedupe_key", "attempt", "max_attempts", "enqueued_at",
                 "deadline", "traceparent", "ordering_key", "headers", "payload", "raw")

    def __init__(self, id: str, type: str, source: str = "", dedupe_key: str = "",
                 attempt: int = 1, max_attempts: int = 1, enqueued_at: str = "",
                 deadline: Optional[str] = None, traceparent: str = "",
                 ordering_key: Optional[str] = None, headers: Optional[Dict[str, str]] = None,
                 payload: Any = None, raw: Optional[Dict[str, Any]] = None):
        self.id = id
        self.type = type
        self.source = source
        self.dedupe_key = dedupe_key
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.enqueued_at = enqueued_at
        self.deadline = deadline  # when the attempt's timeout kills it
        self.traceparent = traceparent
        self.ordering_key = ordering_key
        self.headers = headers if headers is not None else {}
        self.payload = payload
        self.raw = raw if raw is not None else {}

    def __repr__(self) -> str:
        return f"Envelope(id={self.id!r}, type={self.type!r}, attempt={self.attempt})"

    @classmethod
    def from_json(cls, obj: Dict[str, Any]) -> "Envelope":
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
            raise ValueError("an envelope needs a string id")
        return cls(
            id=obj["id"],
            type=str(obj.get("type", "")),
            source=str(obj.get("source", "")),
            dedupe_key=str(obj.get("dedupe_key", "")),
            attempt=int(obj.get("attempt", 1)),
            max_attempts=int(obj.get("max_attempts", 1)),
            enqueued_at=str(obj.get("enqueued_at", "")),
            deadline=obj.get("deadline"),
            traceparent=str(obj.get("traceparent", "")),
            ordering_key=obj.get("ordering_key"),
            headers=dict(obj.get("headers") or {}),
            payload=obj.get("payload"),
            raw=obj,
        )

    @property
    def trace_id(self) -> str:
        """The 32-hex trace id of `traceparent` ('' when absent)."""
        parts = self.traceparent.split("-")
        return parts[1] if len(parts) == 4 else ""

    @property
    def deadline_epoch(self) -> Optional[float]:
        """The deadline as Unix seconds, or None when the envelope has none."""
        return parse_timestamp(self.deadline) if self.deadline else None

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts
