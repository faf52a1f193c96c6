"""Team messages: what a message must be, and what the system says about other services' events."""

from __future__ import annotations

from dataclasses import dataclass

from iopcare.kit.errors import FieldViolations
from iopcare.notes import codes

MAX_TEXT = 10_000


@dataclass(frozen=True)
class NewMessage:
    patient_id: str
    text: str
    priority: str
    category: str
    sender: str
    about: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()


def check_message(message: NewMessage) -> None:
    problems = FieldViolations()
    if not message.text.strip():
        problems.add("text", "a message needs text")
    if len(message.text) > MAX_TEXT:
        problems.add("text", f"at most {MAX_TEXT} characters")
    if message.priority not in codes.PRIORITIES:
        problems.add("priority", f"one of {', '.join(codes.PRIORITIES)}")
    if message.category not in codes.CATEGORIES:
        problems.add("category", f"one of {', '.join(sorted(codes.CATEGORIES))}")
    problems.raise_if_any("the message cannot be posted")


def plan_created_text(title: str | None, activity_count: int) -> str:
    name = f" \u201c{title}\u201d" if title else ""
    noun = "activity" if activity_count == 1 else "activities"
    return f"Care plan created{name} with {activity_count} {noun}."


def sessions_proposed_text(count: int) -> str:
    noun = "session" if count == 1 else "sessions"
    return f"{count} {noun} proposed from the care plan; please confirm them."


#: Who is alerted to a crisis on the patient's team (issue 4: the psychiatrist and the therapist).
CRISIS_RECIPIENT_ROLES = ("psychiatrist", "therapist")


def crisis_text(measure: str, total: float | None, item9: float | None, measured: str) -> str:
    """The alert clinicians read first: what was measured, the scores, and what to do."""
    scores = []
    if total is not None:
        scores.append(f"total {total:g}")
    if item9 is not None:
        scores.append(f"item 9 (thoughts of self-harm) {item9:g}")
    detail = f" ({', '.join(scores)})" if scores else ""
    return (
        f"CRISIS: {measure} recorded {measured}{detail}. "
        "Contact the patient today and follow the program's safety protocol; acknowledge this "
        "alert when done."
    )


def review_due_text(title: str | None) -> str:
    name = f" \u201c{title}\u201d" if title else ""
    return f"The care plan{name} is due for its team review."
