"""`Subscription` over REST: create, read, update, delete, search (the caller's own), `$status`
and `$events` (Subscriptions R5 Backport IG 1.1.0, R4)."""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from iopcare.gateway import release, routing
from iopcare.gateway.errors import FhirHttpError, Problem, http_error
from iopcare.gateway.http import FhirRequest, FhirResponse, GatewayContext, etag, parse_etag
from iopcare.gateway.subscriptions.domain import model, topics
from iopcare.gateway.subscriptions.store import Owner, RequestIdReused, Row

if TYPE_CHECKING:
    from iopcare.gateway.client import Caller
    from iopcare.gateway.subscriptions.engine import Engine

TYPE = "Subscription"


def handles(path: str) -> bool:
    parts = [p for p in path.strip("/").split("/") if p]
    return bool(parts) and parts[0] == TYPE


def handle(
    engine: Engine, gateway: GatewayContext, caller: Caller, request: FhirRequest
) -> FhirResponse:
    parts = [p for p in request.path.strip("/").split("/") if p]
    method = request.method
    if len(parts) == 1 or (len(parts) == 2 and parts[1] == "_search"):
        if method == "POST" and len(parts) == 1:
            return _create(engine, gateway, caller, request)
        if method == "GET" or len(parts) == 2:
            return _search(engine, gateway, caller, request)
        raise _not_allowed(method, "GET, POST")
    subscription_id = parts[1]
    if not routing._ID.match(subscription_id):
        raise http_error(400, "value", f"{subscription_id[:70]!r} is not a FHIR id")
    if len(parts) == 2:
        if method == "GET":
            return _read(engine, gateway, caller, subscription_id)
        if method == "PUT":
            return _update(engine, gateway, caller, subscription_id, request)
        if method == "DELETE":
            return _delete(engine, gateway, caller, subscription_id)
        raise _not_allowed(method, "GET, PUT, DELETE")
    if len(parts) == 3 and parts[2] in ("$status", "$events"):
        if method not in ("GET", "POST"):
            raise _not_allowed(method, "GET, POST")
        gateway.require_scope(caller, TYPE, "r")
        row = _own(engine, caller, subscription_id)
        if parts[2] == "$status":
            return _status(engine, row)
        return _events(engine, row, request)
    raise http_error(404, "not-found", f"no such path: /{'/'.join(parts)[:100]}")


def _not_allowed(method: str, allowed: str) -> FhirHttpError:
    return FhirHttpError(
        405,
        Problem("not-supported", f"{method} is not allowed here; allowed: {allowed}"),
        headers={"Allow": allowed},
    )


def owner_of(caller: Caller) -> Owner:
    p = caller.principal
    return Owner(p.subject, p.role, p.practitioner_id, tuple(sorted(p.scopes)), caller.patient)


def _own(engine: Engine, caller: Caller, subscription_id: str) -> Row:
    """The caller's own subscription; anyone else's is "not found" (not "forbidden")."""
    row = engine.store.get(subscription_id)
    if row is None or row.owner.subject != caller.principal.subject:
        raise http_error(404, "not-found", f"Subscription/{subscription_id} not found")
    return row


def _answer(
    engine: Engine, row: Row, status: int, headers: dict[str, str] | None = None
) -> FhirResponse:
    resource = model.resource_of(
        row.id, row.spec, row.status, row.version, row.updated_at, row.error
    )
    # The gateway's own resource, made of what its owner asked for: no patient data to release.
    release.admit_composed(resource)
    all_headers = {"ETag": etag(row.version), **(headers or {})}
    return FhirResponse(status, resource, all_headers, {"resource": f"{TYPE}/{row.id}"})


def _checked(
    engine: Engine, gateway: GatewayContext, caller: Caller, request: FhirRequest
) -> model.Spec:
    """The request's Subscription, checked against what the caller may see."""
    body = gateway.body(request, TYPE)
    try:
        spec = model.parse(body)
    except model.Invalid as exc:
        raise http_error(422, "invalid", str(exc), exc.expression) from None
    topic = topics.BY_URL[spec.topic]
    # The topic's resources must be readable under the caller's scopes...
    only = gateway.require_scope(caller, topic.resource_type, "r")
    gateway.require_scope(caller, topic.resource_type, "s")
    if only is not None:
        # ...and a `patient/` scope subscribes to its launch patient only.
        if spec.patient not in (None, only):
            raise http_error(
                403,
                "forbidden",
                "a patient/ scope subscribes to its launch patient only",
                "Subscription._criteria",
            )
        spec = replace(spec, patient=only)
    if spec.patient is not None:
        _may_read_patient(gateway, caller, spec.patient)
    _check_endpoint(engine, spec.endpoint)
    return spec


def _may_read_patient(gateway: GatewayContext, caller: Caller, patient_id: str) -> None:
    """A filter names a patient the caller may read (the services decide, as for a read): one
    they may not read is answered like an unknown one."""
    request = FhirRequest("GET", f"Patient/{patient_id}", [], {}, b"", "")
    try:
        with release.request_scope():
            gateway.dispatch(caller, routing.Route(routing.READ, "Patient", patient_id), request)
    except FhirHttpError as exc:
        if exc.status >= 500:
            raise
        raise http_error(
            422,
            "invalid",
            f"Patient/{patient_id} is not a patient this caller may read",
            "Subscription._criteria",
        ) from None


def _check_endpoint(engine: Engine, endpoint: str) -> None:
    parsed = urllib.parse.urlsplit(endpoint)
    if not parsed.hostname:
        raise http_error(
            422, "invalid", "the endpoint has no host", "Subscription.channel.endpoint"
        )
    if parsed.scheme == "https" or engine.config.allow_http:
        return
    try:
        loopback = ipaddress.ip_address(parsed.hostname).is_loopback
    except ValueError:
        loopback = parsed.hostname == "localhost"
    if not loopback:
        raise http_error(
            422,
            "invalid",
            "notifications may carry patient data: the endpoint must be https",
            "Subscription.channel.endpoint",
        )


def _handshake(engine: Engine, spec: model.Spec, events_since_start: int = 0) -> Any:
    return lambda subscription_id, at: model.notification(
        engine.base_url,
        subscription_id,
        spec.topic,
        "requested",
        model.HANDSHAKE,
        events_since_start,
        at,
        None,
        spec.payload,
    )


def _create(
    engine: Engine, gateway: GatewayContext, caller: Caller, request: FhirRequest
) -> FhirResponse:
    gateway.require_scope(caller, TYPE, "c")
    spec = _checked(engine, gateway, caller, request)
    request_id = request.header("x-request-id")[:100] or None
    try:
        row, created = engine.store.create(
            owner_of(caller), spec, request_id, _handshake(engine, spec)
        )
    except RequestIdReused as exc:
        raise FhirHttpError(
            409, Problem("conflict", f"X-Request-Id: {exc}"), reason="REQUEST_ID_REUSED"
        ) from None
    engine.wake_sender.set()
    location = f"{request.base_url}/{TYPE}/{row.id}/_history/{row.version}"
    return _answer(engine, row, 201 if created else 200, {"Location": location})


def _read(
    engine: Engine, gateway: GatewayContext, caller: Caller, subscription_id: str
) -> FhirResponse:
    gateway.require_scope(caller, TYPE, "r")
    return _answer(engine, _own(engine, caller, subscription_id), 200)


def _update(
    engine: Engine,
    gateway: GatewayContext,
    caller: Caller,
    subscription_id: str,
    request: FhirRequest,
) -> FhirResponse:
    gateway.require_scope(caller, TYPE, "u")
    row = _own(engine, caller, subscription_id)
    spec = _checked(engine, gateway, caller, request)
    body = gateway.body(request, TYPE)
    if body.get("id") != subscription_id:
        raise http_error(400, "invalid", "the body's id must be the URL's", "Subscription.id")
    wanted = request.header("if-match")
    if wanted:
        version = parse_etag(wanted)
        if version != row.version:
            raise FhirHttpError(
                412,
                Problem("conflict", f"Subscription/{subscription_id} is at version {row.version}"),
                headers={"ETag": etag(row.version)},
            )
    changed = engine.store.replace(
        row, spec, owner_of(caller), _handshake(engine, spec, row.events_since_start)
    )
    if changed is None:
        raise http_error(412, "conflict", "the subscription changed meanwhile; read it again")
    engine.wake_sender.set()
    return _answer(engine, changed, 200)


def _delete(
    engine: Engine, gateway: GatewayContext, caller: Caller, subscription_id: str
) -> FhirResponse:
    gateway.require_scope(caller, TYPE, "d")
    row = _own(engine, caller, subscription_id)
    engine.store.delete(row.id)
    return FhirResponse(204, None, {}, {"resource": f"{TYPE}/{row.id}"})


def _search(
    engine: Engine, gateway: GatewayContext, caller: Caller, request: FhirRequest
) -> FhirResponse:
    gateway.require_scope(caller, TYPE, "s")
    known = {"status", "_id", "_format", "_pretty"}
    for name, _ in request.query:
        if name not in known:
            raise http_error(400, "not-supported", f"unknown search parameter {name[:40]!r}", name)
    wanted = {k: v for k, v in request.query}
    rows = [
        r
        for r in engine.store.owned_by(caller.principal.subject)
        if wanted.get("status", r.status) == r.status and wanted.get("_id", r.id) == r.id
    ]
    entries = []
    for row in rows:
        resource = model.resource_of(
            row.id, row.spec, row.status, row.version, row.updated_at, row.error
        )
        release.admit_composed(resource)
        entries.append(
            {
                "fullUrl": f"{request.base_url}/{TYPE}/{row.id}",
                "resource": resource,
                "search": {"mode": "match"},
            }
        )
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(entries),
        "link": [{"relation": "self", "url": f"{request.base_url}/{TYPE}"}],
        "entry": entries,
    }
    return FhirResponse(200, bundle)


def _status(engine: Engine, row: Row) -> FhirResponse:
    status = model.status_parameters(
        engine.base_url,
        row.id,
        row.spec.topic,
        row.status,
        "query-status",
        row.events_since_start,
        [],
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "link": [{"relation": "self", "url": f"{engine.base_url}/{TYPE}/{row.id}/$status"}],
        "entry": [
            {
                "fullUrl": f"urn:uuid:{status['id']}",
                "resource": status,
                "search": {"mode": "match"},
            }
        ],
    }
    return FhirResponse(200, bundle, {}, {"resource": f"{TYPE}/{row.id}"})


def _number(request: FhirRequest, name: str) -> int | None:
    values = [v for k, v in request.query if k == name]
    if not values:
        return None
    if not values[-1].isdigit() or len(values[-1]) > 18:
        raise http_error(400, "value", f"{name} must be an event number", name)
    return int(values[-1])


def _events(engine: Engine, row: Row, request: FhirRequest) -> FhirResponse:
    """The stored event notifications in the range, as references (the content hint is ignored:
    resources are not sent again here, ADR 0027)."""
    since = _number(request, "eventsSinceNumber") or 1
    until = _number(request, "eventsUntilNumber")
    stored = engine.store.notifications(row.id, since, until)
    events = [
        (int(n.event_number), n.created_at, n.focus if row.spec.payload != "empty" else None)
        for n in stored
    ]
    status = model.status_parameters(
        engine.base_url,
        row.id,
        row.spec.topic,
        row.status,
        "query-event",
        row.events_since_start,
        events,
    )
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{status['id']}",
            "resource": status,
            "request": {"method": "GET", "url": f"{engine.base_url}/Subscription/{row.id}/$events"},
            "response": {"status": "200"},
        }
    ]
    if row.spec.payload != "empty":
        for n in stored:
            entries.append(
                {
                    "fullUrl": f"{engine.base_url}/{n.focus}",
                    "request": {"method": "PUT", "url": n.focus},
                    "response": {"status": "200"},
                }
            )
    bundle = {
        "resourceType": "Bundle",
        "meta": {"profile": [model.PROFILE_NOTIFICATION]},
        "type": "history",
        "timestamp": model._instant(status_time()),
        "entry": entries,
    }
    return FhirResponse(200, bundle, {}, {"resource": f"{TYPE}/{row.id}"})


def status_time() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
