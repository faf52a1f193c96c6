"""The R4 shapes of the Subscriptions R5 Backport IG 1.1.0 (pure): what a client's Subscription
asks for, the Subscription as the gateway answers it, and the notification Bundles.

A Subscription (profile `backport-subscription`): `criteria` is the topic's canonical URL, its
`_criteria` extension `backport-filter-criteria` holds the filter (`CarePlan?patient=Patient/1`;
the gateway filters by patient only), `channel.type` is `rest-hook` with an `endpoint`,
`channel.payload` the MIME type (`application/fhir+json`) and its `_payload` extension
`backport-payload-content` the content (`empty`, `id-only`, `full-resource`);
`channel.extension` may carry `backport-heartbeat-period` (seconds), `backport-timeout` (seconds)
and `backport-max-count` (accepted; the gateway sends one event per notification).

A notification (profile `backport-subscription-notification-r4`) is a `history` Bundle whose first
entry is a Parameters resource (`backport-subscription-status-r4`) with `subscription`, `topic`,
`status`, `type` (handshake, heartbeat, event-notification, query-status, query-event),
`events-since-subscription-start` and, per event, `notification-event` with `event-number`,
`timestamp` and `focus`; for `id-only` and `full-resource` the focus follows as an entry (with the
resource only for `full-resource`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from iopcare.gateway.subscriptions.domain import topics

IG = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
PROFILE_SUBSCRIPTION = f"{IG}/backport-subscription"
PROFILE_NOTIFICATION = f"{IG}/backport-subscription-notification-r4"
PROFILE_STATUS = f"{IG}/backport-subscription-status-r4"
EXT_FILTER = f"{IG}/backport-filter-criteria"
EXT_PAYLOAD = f"{IG}/backport-payload-content"
EXT_HEARTBEAT = f"{IG}/backport-heartbeat-period"
EXT_TIMEOUT = f"{IG}/backport-timeout"
EXT_MAX_COUNT = f"{IG}/backport-max-count"
EXT_TOPIC_CANONICAL = f"{IG}/capabilitystatement-subscriptiontopic-canonical"

PAYLOADS = ("empty", "id-only", "full-resource")
MEDIA_TYPES = ("application/fhir+json", "application/json")
#: Statuses a client may ask for; `error` is the server's to set.
CLIENT_STATUSES = ("requested", "active", "off")
HANDSHAKE = "handshake"
HEARTBEAT = "heartbeat"
EVENT = "event-notification"

_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_FILTER = re.compile(
    r"^(?P<type>[A-Z][A-Za-z]+)\?(?P<name>patient|subject)=(?:Patient/)?(?P<id>.+)$"
)
MAX_HEARTBEAT_SECONDS = 24 * 3600
MAX_TIMEOUT_SECONDS = 120


class Invalid(ValueError):
    """The Subscription asks for something not offered; `expression` names the element."""

    def __init__(self, message: str, expression: str) -> None:
        super().__init__(message)
        self.expression = expression


@dataclass(frozen=True)
class Spec:
    """What a Subscription asks for, checked."""

    topic: str
    patient: str | None
    endpoint: str
    payload: str
    heartbeat_seconds: int | None
    timeout_seconds: int | None
    max_count: int | None
    headers: tuple[str, ...]
    status: str
    reason: str
    end: str | None


def _ext(element: Any, url: str) -> dict[str, Any] | None:
    if not isinstance(element, dict):
        return None
    for extension in element.get("extension", []):
        if isinstance(extension, dict) and extension.get("url") == url:
            return extension
    return None


def _positive(extension: dict[str, Any] | None, where: str, most: int | None) -> int | None:
    if extension is None:
        return None
    value = next((v for k, v in extension.items() if k.startswith("value")), None)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid(f"{where} must be a positive whole number", where)
    if most is not None and value > most:
        raise Invalid(f"{where} may be at most {most}", where)
    return value


def _patient_filter(resource: dict[str, Any], topic: topics.Topic) -> str | None:
    """The patient of the `backport-filter-criteria` (`CarePlan?patient=Patient/1`), if any."""
    filters = [
        e.get("valueString")
        for e in resource.get("_criteria", {}).get("extension", [])
        if isinstance(e, dict) and e.get("url") == EXT_FILTER
    ]
    if len(filters) > 1:
        raise Invalid("one filter criteria at most", "Subscription._criteria")
    if not filters:
        return None
    found = _FILTER.match(str(filters[0]))
    if found is None or found["type"] != topic.resource_type or not _FHIR_ID.match(found["id"]):
        raise Invalid(
            f"the filter must be {topic.resource_type}?patient=Patient/<id> (only the patient "
            "filter is offered)",
            "Subscription._criteria.extension",
        )
    return found["id"]


def _channel(resource: dict[str, Any]) -> tuple[dict[str, Any], str, str, tuple[str, ...]]:
    """The rest-hook channel: (the channel, its endpoint, the payload content, the headers)."""
    channel = resource.get("channel")
    if not isinstance(channel, dict):
        raise Invalid("Subscription.channel is required", "Subscription.channel")
    if channel.get("type") != "rest-hook":
        raise Invalid("only the rest-hook channel is offered", "Subscription.channel.type")
    endpoint = channel.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise Invalid("a rest-hook needs an http(s) endpoint", "Subscription.channel.endpoint")
    media = channel.get("payload")
    if media is not None and str(media).split(";")[0].strip() not in MEDIA_TYPES:
        raise Invalid("the payload must be application/fhir+json", "Subscription.channel.payload")
    content_ext = _ext(channel.get("_payload"), EXT_PAYLOAD)
    payload = "id-only" if content_ext is None else str(content_ext.get("valueCode"))
    if media is None:
        payload = "empty"
    if payload not in PAYLOADS:
        raise Invalid(
            f"payload content must be one of {', '.join(PAYLOADS)}",
            "Subscription.channel._payload.extension",
        )
    headers = channel.get("header", [])
    if not isinstance(headers, list) or not all(
        isinstance(h, str) and ":" in h and "\n" not in h and "\r" not in h for h in headers
    ):
        raise Invalid(
            "each header must be 'Name: value' on one line", "Subscription.channel.header"
        )
    return channel, endpoint, payload, tuple(headers)


def parse(resource: dict[str, Any]) -> Spec:
    """The checked request of a Subscription (raises Invalid naming the element)."""
    criteria = resource.get("criteria")
    if not isinstance(criteria, str) or criteria not in topics.BY_URL:
        offered = ", ".join(sorted(topics.BY_URL))
        raise Invalid(
            f"Subscription.criteria must be one of the topics offered: {offered}",
            "Subscription.criteria",
        )
    topic = topics.BY_URL[criteria]
    patient = _patient_filter(resource, topic)
    channel, endpoint, payload, headers = _channel(resource)
    status = resource.get("status", "requested")
    if status not in CLIENT_STATUSES:
        raise Invalid(f"status must be one of {', '.join(CLIENT_STATUSES)}", "Subscription.status")
    end = resource.get("end")
    if end is not None and _instant_of(end) is None:
        raise Invalid("end must be an instant with its time zone", "Subscription.end")
    return Spec(
        topic=topic.url,
        patient=patient,
        endpoint=endpoint,
        payload=payload,
        heartbeat_seconds=_positive(
            _ext(channel, EXT_HEARTBEAT),
            "Subscription.channel.extension(heartbeat)",
            MAX_HEARTBEAT_SECONDS,
        ),
        timeout_seconds=_positive(
            _ext(channel, EXT_TIMEOUT),
            "Subscription.channel.extension(timeout)",
            MAX_TIMEOUT_SECONDS,
        ),
        max_count=_positive(
            _ext(channel, EXT_MAX_COUNT), "Subscription.channel.extension(max-count)", None
        ),
        headers=headers,
        status=str(status),
        reason=str(resource.get("reason") or "iopcare topic subscription"),
        end=end if isinstance(end, str) else None,
    )


def _instant_of(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def ended(spec: Spec, at: datetime) -> bool:
    """Whether the subscription's `end` came before `at` (an event then is not notified)."""
    end = _instant_of(spec.end)
    if end is None:
        return False
    return end < (at if at.tzinfo is not None else at.replace(tzinfo=UTC))


def resource_of(
    subscription_id: str, spec: Spec, status: str, version: int, updated: datetime, error: str
) -> dict[str, Any]:
    """The Subscription as the gateway answers it (headers are never echoed: they may hold the
    receiver's credentials)."""
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": spec.endpoint}
    extensions = []
    if spec.heartbeat_seconds is not None:
        extensions.append({"url": EXT_HEARTBEAT, "valueUnsignedInt": spec.heartbeat_seconds})
    if spec.timeout_seconds is not None:
        extensions.append({"url": EXT_TIMEOUT, "valueUnsignedInt": spec.timeout_seconds})
    if spec.max_count is not None:
        extensions.append({"url": EXT_MAX_COUNT, "valuePositiveInt": spec.max_count})
    if extensions:
        channel["extension"] = extensions
    if spec.payload != "empty":
        channel["payload"] = "application/fhir+json"
        channel["_payload"] = {"extension": [{"url": EXT_PAYLOAD, "valueCode": spec.payload}]}
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": subscription_id,
        "meta": {
            "versionId": str(version),
            "lastUpdated": _instant(updated),
            "profile": [PROFILE_SUBSCRIPTION],
        },
        "status": status,
        "reason": spec.reason,
        "criteria": spec.topic,
        "channel": channel,
    }
    if spec.patient is not None:
        topic = topics.BY_URL[spec.topic]
        resource["_criteria"] = {
            "extension": [
                {
                    "url": EXT_FILTER,
                    "valueString": f"{topic.resource_type}?patient=Patient/{spec.patient}",
                }
            ]
        }
    if spec.end is not None:
        resource["end"] = spec.end
    if error:
        resource["error"] = error
    return resource


@dataclass(frozen=True)
class Focus:
    """What one event notification is about: the resource's reference and, for full-resource,
    the resource as released to the subscriber."""

    reference: str
    resource: dict[str, Any] | None
    created: bool


def _instant(at: datetime) -> str:
    """An instant with its zone (a stored time read back from SQLite has none: it is UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def status_parameters(
    base_url: str,
    subscription_id: str,
    topic: str,
    status: str,
    kind: str,
    events_since_start: int,
    events: list[tuple[int, datetime, str | None]],
) -> dict[str, Any]:
    """The SubscriptionStatus (R4: Parameters, `backport-subscription-status-r4`); `events` is
    (event number, time, focus reference or None for `empty`)."""
    parameters: list[dict[str, Any]] = [
        {
            "name": "subscription",
            "valueReference": {"reference": f"{base_url}/Subscription/{subscription_id}"},
        },
        {"name": "topic", "valueCanonical": topic},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(events_since_start)},
    ]
    for number, at, focus in events:
        parts: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(number)},
            {"name": "timestamp", "valueInstant": _instant(at)},
        ]
        if focus is not None:
            parts.append({"name": "focus", "valueReference": {"reference": f"{base_url}/{focus}"}})
        parameters.append({"name": "notification-event", "part": parts})
    return {
        "resourceType": "Parameters",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [PROFILE_STATUS]},
        "parameter": parameters,
    }


def notification(
    base_url: str,
    subscription_id: str,
    topic: str,
    status: str,
    kind: str,
    events_since_start: int,
    at: datetime,
    event: tuple[int, Focus] | None,
    payload: str,
) -> dict[str, Any]:
    """A notification Bundle (`history`): the status first, then the focus (id-only: the entry
    without the resource; full-resource: with it; empty: nothing)."""
    events: list[tuple[int, datetime, str | None]] = []
    if event is not None:
        number, focus = event
        events.append((number, at, None if payload == "empty" else focus.reference))
    status_resource = status_parameters(
        base_url, subscription_id, topic, status, kind, events_since_start, events
    )
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{status_resource['id']}",
            "resource": status_resource,
            "request": {
                "method": "GET",
                "url": f"{base_url}/Subscription/{subscription_id}/$status",
            },
            "response": {"status": "200"},
        }
    ]
    if event is not None and payload != "empty":
        _, focus = event
        entry: dict[str, Any] = {
            "fullUrl": f"{base_url}/{focus.reference}",
            "request": {
                "method": "POST" if focus.created else "PUT",
                "url": focus.reference.split("/")[0] if focus.created else focus.reference,
            },
            "response": {"status": "201" if focus.created else "200"},
        }
        if payload == "full-resource" and focus.resource is not None:
            entry["resource"] = focus.resource
        entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [PROFILE_NOTIFICATION]},
        "type": "history",
        "timestamp": _instant(at),
        "entry": entries,
    }
