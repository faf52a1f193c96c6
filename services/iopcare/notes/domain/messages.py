"""Team messages: what a message must be, and what the system says about other services' events."""

from __future__ import annotations

from dataclasses import dataclass

from iopcare.kit.errors import FieldViolations
from iopcare.notes import codes
from iopcare.notes.domain.text import FORBIDDEN_CHARACTERS, has_forbidden_characters

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
    #: The message this one answers (Communication.inResponseTo).
    in_response_to: str | None = None
    #: What the message is part of: a CarePlan, an activity, an appointment (Communication.partOf).
    part_of: tuple[str, ...] = ()
    #: Attachments by reference (DocumentReference/..., Binary/..., a URL): never inline content.
    attachments: tuple[str, ...] = ()
    #: Security labels (system, code) the message inherits from what it was derived from (a
    #: labelled plan's "created" message is as labelled as the plan: 42 CFR 2.12(d)).
    security: tuple[tuple[str, str], ...] = ()


def check_message(message: NewMessage) -> None:
    problems = FieldViolations()
    if not message.text.strip():
        problems.add("text", "a message needs text")
    if len(message.text) > MAX_TEXT:
        problems.add("text", f"at most {MAX_TEXT} characters")
    if has_forbidden_characters(message.text):
        problems.add("text", FORBIDDEN_CHARACTERS)
    if message.priority not in codes.PRIORITIES:
        problems.add("priority", f"one of {', '.join(codes.PRIORITIES)}")
    if message.category not in codes.CATEGORIES:
        problems.add("category", f"one of {', '.join(sorted(codes.CATEGORIES))}")
    for name, refs in (
        ("recipients", message.recipients),
        ("about", message.about),
        ("part_of", message.part_of),
        ("attachments", message.attachments),
    ):
        if len(refs) > MAX_REFERENCES:
            problems.add(name, f"at most {MAX_REFERENCES}")
        for i, ref in enumerate(refs):
            if not is_reference(ref):
                problems.add(f"{name}[{i}]", "a reference: Type/id (or role:<team role>)")
    problems.raise_if_any("the message cannot be posted")


MAX_REFERENCES = 20


def is_reference(value: str) -> bool:
    """`Type/id`, a URL, or for recipients `role:<team role>`."""
    if (
        not value
        or len(value) > 200
        or any(c.isspace() for c in value)
        or has_forbidden_characters(value)
    ):
        return False
    if value.startswith(("role:", "https://", "http://")):
        return len(value) > 5
    kind, _, ident = value.partition("/")
    return kind.isalpha() and kind[:1].isupper() and bool(ident) and "/" not in ident


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


#: What the thread says when a plan changes, by the change careplan announces.
PLAN_CHANGE_WORDS = {
    "updated": "was updated",
    "activated": "is now active",
    "suspended": "was suspended",
    "resumed": "was resumed",
    "completed": "was completed",
    "revoked": "was revoked",
    "entered-in-error": "was marked entered in error",
}


def plan_changed_text(title: str | None, change: str, version: str | None) -> str:
    name = f" \u201c{title}\u201d" if title else ""
    words = PLAN_CHANGE_WORDS.get(change, "changed")
    at = f" (version {version})" if version else ""
    return f"The care plan{name} {words}{at}."


def no_show_text(session: str | None, start: str | None) -> str:
    what = session or "a session"
    when = f" on {start}" if start else ""
    return f"No-show: the patient missed {what}{when}."


def attendance_alert_text(kind: str, detail: str | None) -> str:
    """A scheduling alert (intensity below the program's minimum, dropout risk) as the thread
    says it; the detail is scheduling's own wording when it sent one."""
    heading = {
        "intensity": "Attendance below the program's minimum intensity",
        "dropout-risk": "Dropout risk",
        "missed-checkin": "Missed daily check-in",
    }.get(kind, "Attendance alert")
    return f"{heading}: {detail}." if detail else f"{heading}."


#: Who an unacknowledged crisis is re-escalated to: the whole clinical team.
ESCALATION_ROLES = ("psychiatrist", "therapist", "physician", "nurse", "case-manager")


def crisis_priority(priority: str) -> str:
    """A clinician's crisis message is at least urgent: raised to asap or stat, never lowered."""
    return priority if priority in ("asap", "stat") else "urgent"


def escalation_text(after_minutes: int) -> str:
    return (
        f"CRISIS NOT ACKNOWLEDGED after {after_minutes} minutes: contact the "
        "patient now and acknowledge the alert."
    )


def acknowledged_text(by: str, note: str) -> str:
    return f"Crisis alert acknowledged by {by}. {note}".strip()


def checkin_crisis_text(authored: str) -> str:
    """The alert a patient's own check-in raises when they answer yes to the safety item."""
    return (
        'CRISIS: the patient answered YES to "Are you having thoughts of harming yourself?" '
        f"in their daily check-in ({authored}). Contact the patient now (988 if unreachable and "
        "at risk) and acknowledge this alert."
    )
