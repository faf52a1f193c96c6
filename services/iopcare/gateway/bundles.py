"""`POST [base]`: batch and transaction Bundles.

Each entry becomes the same interaction a single REST request would be (so scopes, validation and
the services' rules apply unchanged). `urn:uuid:` references between entries are resolved: an
entry that creates a resource is processed before the entries that point at it, and their
references are rewritten to the created `Type/id`.

In a batch each entry is its own (test-matrix B7): an entry that is malformed, unsupported, in a
reference cycle or invalid gets its own 4xx response with an OperationOutcome in
`entry.response.outcome`, and the others are processed as if it were not there.

Transactions are all or nothing. Every entry is validated first (nothing is written if one is
invalid: test-matrix B6); then a transaction is accepted only if it writes at most one resource.
The services keep separate databases and none of them offers a multi-resource write yet, so two
writes could not be made atomic: such a transaction is refused with an OperationOutcome that says
why (and which services it spans), instead of being applied half way. docs/gateway.md and the
CapabilityStatement say the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from iopcare.gateway import codes, release, routing
from iopcare.gateway.client import Caller
from iopcare.gateway.errors import FhirHttpError, Problem, from_kit, http_error
from iopcare.gateway.http import (
    INTERACTION_LETTER,
    FhirRequest,
    FhirResponse,
    GatewayContext,
    error_response,
)
from iopcare.kit import errors as kit_errors
from iopcare.kit import fhir

URN = "urn:uuid:"
#: What an entry of a batch or transaction may be: one resource interaction.
ENTRY_ROUTES = (
    routing.READ,
    routing.VREAD,
    routing.SEARCH,
    routing.CREATE,
    routing.UPDATE,
    routing.HISTORY,
)
WRITES = ("POST", "PUT")
REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    424: "Failed Dependency",
    428: "Precondition Required",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class Entry:
    """One entry of a batch or transaction, as parsed."""

    index: int
    full_url: str
    method: str
    url: str
    resource: dict[str, Any] | None
    if_none_exist: str = ""
    if_match: str = ""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path.strip("/")

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.url).query, keep_blank_values=True)


def references(value: Any) -> Iterator[dict[str, Any]]:
    """Every Reference-shaped object (a dict with a string `reference`) in a resource."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("reference"), str):
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def dependencies(resource: dict[str, Any] | None, full_urls: set[str]) -> set[str]:
    """The `urn:uuid:` fullUrls of other entries that a resource points at."""
    if resource is None:
        return set()
    return {r["reference"] for r in references(resource) if r["reference"] in full_urls}


def resolve(resource: dict[str, Any], assigned: dict[str, str]) -> dict[str, Any]:
    """A copy of `resource` with references to `urn:uuid:` fullUrls replaced by `Type/id`."""
    copy: dict[str, Any] = json.loads(json.dumps(resource))
    for reference in references(copy):
        if reference["reference"] in assigned:
            reference["reference"] = assigned[reference["reference"]]
    return copy


def processing_order(
    entries: list[Entry], cycles: dict[int, FhirHttpError] | None = None
) -> list[Entry]:
    """Entries ordered so that each comes after the entries whose urn:uuid it references
    (otherwise in bundle order); 400 on a cycle, which no order can satisfy. With `cycles` (a
    batch), the entries in or behind a cycle are left out and their 400 put there instead."""
    full_urls = {e.full_url for e in entries if e.full_url.startswith(URN)}
    pending = {e.index: dependencies(e.resource, full_urls) for e in entries}
    by_url = {e.full_url: e.index for e in entries if e.full_url in full_urls}
    done: set[str] = set()
    ordered: list[Entry] = []
    remaining = list(entries)
    while remaining:
        ready = [e for e in remaining if pending[e.index] <= done]
        if not ready:
            if cycles is None:
                raise http_error(
                    400,
                    "invalid",
                    "entries reference each other in a cycle (urn:uuid)",
                    f"Bundle.entry[{remaining[0].index}]",
                )
            for e in remaining:
                cycles[e.index] = http_error(
                    400,
                    "invalid",
                    "the entry is in, or depends on, a cycle of urn:uuid references",
                    f"Bundle.entry[{e.index}]",
                )
            break
        for e in ready:
            ordered.append(e)
            remaining.remove(e)
            if e.full_url in by_url:
                done.add(e.full_url)
    return ordered


def parse_entries(
    bundle: dict[str, Any], max_entries: int, refused: dict[int, FhirHttpError] | None = None
) -> list[Entry]:
    """The entries as interactions; 400 naming every malformed one, or (with `refused`, a batch)
    each malformed entry's own 400 put there and the rest returned."""
    raw = bundle.get("entry", [])
    if len(raw) > max_entries:
        raise http_error(
            413,
            "too-costly",
            f"{len(raw)} entries; at most {max_entries} per Bundle",
            "Bundle.entry",
        )
    entries = []
    problems: dict[int, Problem] = {}
    for index, item in enumerate(raw):
        where = f"Bundle.entry[{index}]"
        request = item.get("request") if isinstance(item, dict) else None
        if not isinstance(request, dict) or "method" not in request or "url" not in request:
            problems[index] = Problem("required", "each entry needs request.method and .url", where)
            continue
        method = str(request["method"]).upper()
        if method not in ("GET", "POST", "PUT"):
            problems[index] = Problem(
                "not-supported", f"{method} entries are not supported", f"{where}.request"
            )
            continue
        resource = item.get("resource")
        if method in WRITES and not isinstance(resource, dict):
            problems[index] = Problem("required", f"a {method} entry needs a resource", where)
            continue
        entries.append(
            Entry(
                index,
                str(item.get("fullUrl", "")),
                method,
                str(request["url"]),
                resource if isinstance(resource, dict) else None,
                str(request.get("ifNoneExist", "")),
                str(request.get("ifMatch", "")),
            )
        )
    if problems:
        if refused is None:
            raise FhirHttpError(400, list(problems.values()))
        refused.update({i: FhirHttpError(400, [p]) for i, p in problems.items()})
    return entries


def read_bundle(gateway: GatewayContext, request: FhirRequest) -> dict[str, Any]:
    """The posted Bundle. A batch is validated as an envelope only: each entry's resource is
    validated when that entry runs, so one invalid resource fails its own entry, not the batch
    (B7). Anything else (a transaction) is validated whole, as every single request is (B6)."""
    data = fhir.load_json(request.body, max_bytes=gateway.max_body_bytes) if request.body else None
    if not (
        isinstance(data, dict)
        and data.get("resourceType") == "Bundle"
        and data.get("type") == "batch"
        and isinstance(data.get("entry", []), list)
    ):
        return gateway.body(request, "Bundle")
    envelope = {
        **data,
        "entry": [
            {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
            for e in data.get("entry", [])
        ],
    }
    gateway.body(replace(request, body=json.dumps(envelope).encode()), "Bundle")
    return data


def _validate(gateway: GatewayContext, caller: Caller, entries: list[Entry]) -> list[Problem]:
    """Every reason any entry would fail before it reaches a service (all of them, not the
    first): unknown paths, unserved types, missing scopes, invalid resources."""
    problems: list[Problem] = []
    for e in entries:
        where = f"Bundle.entry[{e.index}]"
        try:
            route = routing.route(e.method, e.path)
            if route.kind not in ENTRY_ROUTES:
                raise http_error(
                    400, "not-supported", f"{e.method} {e.url[:80]} is not allowed here"
                )
            handler = gateway.handler(route.type)
            if e.resource is not None:
                if e.resource.get("resourceType") != route.type:
                    raise http_error(
                        400, "invalid", f"the resource is not a {route.type}", "resourceType"
                    )
                _, model = fhir.parse_document(
                    e.resource, route.type, max_bytes=gateway.max_body_bytes
                )
                codes.check(model, "")  # paths relative to the entry's resource
            gateway.require_scope(caller, handler.type, INTERACTION_LETTER[route.kind])
        except FhirHttpError as exc:
            problems += [
                Problem(
                    p.code,
                    p.diagnostics,
                    f"{where}.resource.{p.expression}" if p.expression else where,
                    p.severity,
                )
                for p in exc.problems
            ]
        except fhir.FhirError as exc:
            problems += [
                Problem(
                    i.code,
                    i.diagnostics,
                    f"{where}.resource" + (f".{i.expression}" if i.expression else ""),
                )
                for i in exc.issues
            ]
    return problems


def _services(gateway: GatewayContext, entries: list[Entry]) -> set[str]:
    return {
        gateway.handler(routing.route(e.method, e.path).type).service
        for e in entries
        if e.method in WRITES
    }


def run_entry(
    gateway: GatewayContext,
    caller: Caller,
    entry: Entry,
    request: FhirRequest,
    assigned: dict[str, str],
) -> FhirResponse:
    resource = resolve(entry.resource, assigned) if entry.resource is not None else None
    headers = {"content-type": "application/fhir+json"}
    if entry.if_none_exist:
        headers["if-none-exist"] = entry.if_none_exist
    if entry.if_match:
        headers["if-match"] = entry.if_match
    sub = FhirRequest(
        entry.method,
        entry.path,
        entry.query,
        headers,
        json.dumps(resource).encode() if resource is not None else b"",
        request.base_url,
    )
    try:
        route = routing.route(entry.method, entry.path)
        if route.kind not in ENTRY_ROUTES:
            # No bundles in bundles, no operations: an entry is one resource interaction.
            raise http_error(
                400, "not-supported", f"{entry.method} {entry.url[:80]} is not allowed in a Bundle"
            )
        response = gateway.dispatch(caller, route, sub)
    except FhirHttpError as exc:
        return error_response(exc)
    except kit_errors.IopcareError as exc:
        # The entry's own body failed the codec (invalid FHIR): its own 4xx, as a single
        # request's would be; in a batch the other entries go on.
        return error_response(from_kit(exc))
    if entry.method == "POST" and entry.full_url.startswith(URN) and response.status < 300:
        location = response.headers.get("Location", "")
        parts = location.removeprefix(request.base_url).strip("/").split("/")
        if len(parts) >= 2:
            assigned[entry.full_url] = f"{parts[0]}/{parts[1]}"
    return response


def response_entry(response: FhirResponse) -> dict[str, Any]:
    status = f"{response.status} {REASONS.get(response.status, '')}".strip()
    result: dict[str, Any] = {"response": {"status": status}}
    if "Location" in response.headers:
        result["response"]["location"] = response.headers["Location"]
    if "ETag" in response.headers:
        result["response"]["etag"] = response.headers["ETag"]
    body = response.body
    if isinstance(body, str):
        # The parsed copy of a released resource is as released as its text (release.py).
        body = release.carry(body, json.loads(body))
    if isinstance(body, dict):
        if response.status >= 400:
            result["response"]["outcome"] = body
        else:
            result["resource"] = body
    return result


def process_bundle(
    gateway: GatewayContext, caller: Caller, bundle: dict[str, Any], request: FhirRequest
) -> FhirResponse:
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise http_error(
            400,
            "invalid",
            f"POST [base] takes a batch or transaction Bundle, not {kind!r}",
            "Bundle.type",
        )
    # A batch's malformed entries are answered one by one (B7); a transaction's refuse it (B6).
    refused: dict[int, FhirHttpError] | None = {} if kind == "batch" else None
    entries = parse_entries(bundle, gateway.settings.max_bundle_entries, refused)
    if kind == "transaction":
        problems = _validate(gateway, caller, entries)
        if problems:
            raise FhirHttpError(
                422 if all(p.code != "forbidden" for p in problems) else 403,
                [
                    Problem("processing", "the transaction was not applied: an entry is invalid"),
                    *problems,
                ],
            )
        writes = [e for e in entries if e.method in WRITES]
        if len(writes) > 1:
            services = sorted(_services(gateway, entries))
            why = (
                f"its writes span {' and '.join(services)}, services with separate databases"
                if len(services) > 1
                else f"{len(writes)} writes in {services[0]}, which has no multi-resource write"
            )
            raise http_error(
                422,
                "not-supported",
                f"transaction refused, nothing written: {why}, so it cannot be made "
                "all-or-nothing. A transaction may write one resource; send several as a batch "
                "(each entry on its own) or a handoff through $handoff.",
                "Bundle.entry",
            )
    assigned: dict[str, str] = {}
    results: dict[int, dict[str, Any]] = {}
    for entry in processing_order(entries, refused):
        response = run_entry(gateway, caller, entry, request, assigned)
        if kind == "transaction" and response.status >= 400:
            # Only reads can fail after validation here (the single write decides the outcome).
            return response
        results[entry.index] = response_entry(response)
    if refused:
        for index, error in refused.items():
            results[index] = response_entry(error_response(error))
    body = {
        "resourceType": "Bundle",
        "type": f"{kind}-response",
        "entry": [results[i] for i in sorted(results)],
    }
    return FhirResponse(200, body, audit={"detail": f"{kind} of {len(entries)} entries"})
