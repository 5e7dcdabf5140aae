"""The job envelope (schemas/envelope.schema.json), typed."""
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Optional


def parse_timestamp(text: str) -> float:
    """'2026-11-27T20:00:00.000Z' -> Unix seconds."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


@dataclass
class Envelope:
    id: str
    type: str
    source: str = ""
    dedupe_key: str = ""
    attempt: int = 1
    max_attempts: int = 1
    enqueued_at: str = ""
    deadline: Optional[str] = None  # when the attempt's timeout kills it
    traceparent: str = ""
    ordering_key: Optional[str] = None
    headers: Dict[str, str] = field(default_factory=dict)
    payload: Any = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)  # as received

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
