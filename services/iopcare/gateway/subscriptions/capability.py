"""What the CapabilityStatement says of Subscriptions (Backport IG 1.1.0, R4 guidance): the
Subscription resource with its interactions and operations, and each SubscriptionTopic offered
as a `capabilitystatement-subscriptiontopic-canonical` extension on it."""

from __future__ import annotations

from typing import Any

from iopcare.gateway.subscriptions.domain import model, topics

OPERATIONS = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition"


def resource_entry() -> dict[str, Any]:
    return {
        "extension": [
            {"url": model.EXT_TOPIC_CANONICAL, "valueCanonical": topic.url}
            for topic in topics.TOPICS
        ],
        "type": "Subscription",
        "supportedProfile": [model.PROFILE_SUBSCRIPTION],
        "documentation": (
            "Topic-based subscriptions (Subscriptions R5 Backport IG 1.1.0, R4): rest-hook "
            "channel, handshake and heartbeat, payload content empty, id-only or full-resource, "
            "filter by patient (`{Type}?patient=Patient/{id}`). A subscriber is told only of "
            "resources it may read with the scopes it subscribed with (labelled 42 CFR Part 2 "
            "content only under the patient's Consent naming it, as for a read). Topics: "
            + "; ".join(f"{t.url} ({t.title})" for t in topics.TOPICS)
        ),
        "interaction": [
            {"code": code} for code in ("read", "create", "update", "delete", "search-type")
        ],
        "searchParam": [
            {"name": "status", "type": "token"},
        ],
        "operation": [
            {"name": "status", "definition": f"{OPERATIONS}/backport-subscription-status"},
            {"name": "events", "definition": f"{OPERATIONS}/backport-subscription-events"},
        ],
    }


def describe(statement: dict[str, Any]) -> None:
    """Adds the Subscription entry to the CapabilityStatement (in place)."""
    statement["rest"][0].setdefault("resource", []).append(resource_entry())
