"""Reading interactions and searchsets: read, vread, history, search (with `_include`,
paging and `_summary`) and `Patient/$everything`.

Every resource that leaves passes the release rule (`gw.release_rule`, release.py) and is
emitted through `release.emit`; a Bundle says how many resources it withheld and why.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode

from iopcare.gateway import release, routing, scopes
from iopcare.gateway.client import Caller
from iopcare.gateway.errors import FhirHttpError, http_error
from iopcare.gateway.http import Ask, FhirRequest, FhirResponse, GatewayContext, etag
from iopcare.gateway.resources.base import Found, ResourceHandler, local_reference, reference_id
from iopcare.gateway.search import SearchQuery, matches, pairs_of
from iopcare.gateway.summary import reshapes, shape
from iopcare.kit import fhir

DEFAULT_COUNT = 50
MAX_COUNT = 1000
#: Parameters that are not filters.
CONTROL = {"_count", "_offset", "_summary", "_format", "_include", "_elements", "_pretty"}


# -- the interactions, as `api.INTERACTIONS` registers them ------------------------------------


def read(ask: Ask) -> FhirResponse:
    found = within(ask.only, ask.handler.read(ask.caller, ask.route.id), ask.route)
    released = ask.gateway.release_rule.require(ask.caller, found)
    return resource_response(released, _query_dict(ask.request))


def vread(ask: Ask) -> FhirResponse:
    route = ask.route
    found = within(ask.only, ask.handler.vread(ask.caller, route.id, route.version), route)
    released = ask.gateway.release_rule.require(ask.caller, found)
    return resource_response(released, _query_dict(ask.request))


def history(ask: Ask) -> FhirResponse:
    # Every version of the resource under its current labels (handler.history): a label added
    # later applies to what was stored before it.
    versions = ask.handler.history(ask.caller, ask.route.id)
    for item in versions:
        within(ask.only, item, ask.route)
    shown, withheld = ask.gateway.release_rule.release(ask.caller, versions)
    bundle = bundle_of("history", shown, ask.request, len(shown))
    return FhirResponse(200, note_withheld(bundle, withheld))


def search_type(ask: Ask) -> FhirResponse:
    query = _query_dict(ask.request)
    if ask.request.method == "POST":
        query = SearchQuery(query.pairs + _form(ask.request))
    return search(ask.gateway, ask.caller, ask.handler, query, ask.request)


# -- the parts ---------------------------------------------------------------------------------


def note_withheld(bundle: dict[str, Any], withheld: int) -> dict[str, Any]:
    """Says in a Bundle that resources were left out, and why (never silently)."""
    if withheld:
        bundle.setdefault("entry", []).append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": fhir.operation_outcome(
                    [
                        fhir.Issue(
                            "warning",
                            "suppressed",
                            f"{withheld} resources withheld: labelled as needing the "
                            "patient's consent to leave the program (42 CFR Part 2, "
                            "psychotherapy notes), and no active consent names this caller",
                        )
                    ]
                ),
                **_outcome_entry_kind(bundle),
            }
        )
    return bundle


def resource_response(found: Found, query: dict[str, str], status: int = 200) -> FhirResponse:
    body: Any = release.emit(found, shape(found.resource, query) if reshapes(query) else None)
    return FhirResponse(
        status,
        body,
        version_headers(found),
        # The audit names the id and patient; the path names the type (no parsing on reads).
        {"resource": found.id, "patient": found.patient_id},
    )


def version_headers(found: Found) -> dict[str, str]:
    headers = {"ETag": etag(found.version)}
    updated = found.last_updated
    if updated is not None:
        headers["Last-Modified"] = updated.strftime("%a, %d %b %Y %H:%M:%S GMT")
    return headers


def _local_references(
    handler: ResourceHandler, query: dict[str, str], base_url: str
) -> dict[str, str]:
    """`query` with every reference parameter's value relative to this server: an absolute URL
    under our base loses the base; one of another server is refused with 400 naming the
    parameter (its resource is not ours, whatever id it ends with)."""
    references = {p.name for p in handler.search_params() if p.type == "reference"}
    pairs = pairs_of(query)
    if not any(name in references and "://" in value for name, value in pairs):
        return query
    local: list[tuple[str, str]] = []
    for name, value in pairs:
        if name in references and "://" in value:
            relative = local_reference(value, base_url)
            if relative is None:
                raise http_error(
                    400,
                    "value",
                    f"{name} names a resource of another server (an absolute URL outside "
                    f"{base_url or 'this server'}): only this server's resources are searched",
                    name,
                )
            value = relative
        local.append((name, value))
    return SearchQuery(local)


def find(
    gw: GatewayContext,
    caller: Caller,
    handler: ResourceHandler,
    query: dict[str, str],
    base_url: str = "",
) -> list[Found]:
    """The resources a search query selects (unpaged). `base_url`: this gateway's FHIR base,
    under which an absolute reference is one of ours."""
    query = _local_references(handler, query, base_url)
    only = gw.require_scope(caller, handler.type, scopes.SEARCH)
    if only is not None:
        if not handler.compartment:
            # Calendars and free slots are no patient's records: a patient/ scope, which
            # opens one patient's compartment, does not reach them.
            raise http_error(403, "forbidden", f"a patient/ scope does not cover {handler.type}")
        query = _limited_to(only, query, handler.type)
    known = {p.name: p for p in handler.search_params()}
    unknown = [k for k in query if k not in known and k not in CONTROL]
    if unknown:
        raise http_error(
            400,
            "not-supported",
            f"unknown search parameter {unknown[0][:40]!r} for {handler.type}; supported: "
            f"{', '.join(sorted(known))}",
            unknown[0][:40],
        )
    patient = _patient_of(query, handler)
    candidates = handler.search(caller, patient, query)
    # Repeated parameters AND together (date=ge..&date=lt..).
    filters = [
        (known[name], value)
        for name, value in pairs_of(query)
        if name in known
        and known[name].type != "reference"
        # The Patient handler looks these up in the registry itself.
        and not (handler.type == "Patient" and name in ("_id", "identifier"))
    ]
    return [
        item
        for item in candidates
        if all(matches(item.resource, param, value) for param, value in filters)
    ]


def _patient_of(query: dict[str, str], handler: ResourceHandler) -> str | None:
    """The patient a search is about (`patient`, `subject`, or an `actor` that is a
    Patient), or None (a calendar or slot search, or an actor that is a practitioner or
    room, which the handler passes on itself)."""
    if not handler.compartment:
        return None
    for name in ("patient", "subject", "actor"):
        value = query.get(name)
        if name == "actor" and value and value.split("/")[0] in ("Practitioner", "Location"):
            return None
        if value:
            # Only our own patients: an absolute URL names a patient of another server.
            patient = ""
            if "://" not in value:
                patient = reference_id(value, "Patient") or (value if "/" not in value else "")
            if not patient:
                raise http_error(400, "value", f"{name} must name a Patient", name)
            return patient
    return None


def search(
    gw: GatewayContext,
    caller: Caller,
    handler: ResourceHandler,
    query: dict[str, str],
    request: FhirRequest,
) -> FhirResponse:
    results, withheld = gw.release_rule.release(
        caller, find(gw, caller, handler, query, request.base_url)
    )
    count = _int_param(query, "_count", DEFAULT_COUNT, 0, MAX_COUNT)
    offset = _int_param(query, "_offset", 0, 0, 10**9)
    mode = query.get("_summary", "false")
    if mode == "count":
        return FhirResponse(
            200, {"resourceType": "Bundle", "type": "searchset", "total": len(results)}
        )
    page = results[offset : offset + count]
    entries = [entry_of(item, request, "match", query) for item in page]
    for include in [v for k, v in request.query if k == "_include"]:
        entries += included(gw, caller, handler, include, page, request)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(results),
        "link": links(request, query, offset, count, len(results)),
    }
    if entries:
        bundle["entry"] = entries
    note_withheld(bundle, withheld)
    return FhirResponse(200, bundle, audit={"detail": f"{len(results)} hits, {withheld} withheld"})


def included(
    gw: GatewayContext,
    caller: Caller,
    handler: ResourceHandler,
    include: str,
    page: list[Found],
    request: FhirRequest,
) -> list[dict[str, Any]]:
    if include not in handler.includes:
        raise http_error(
            400,
            "not-supported",
            f"_include={include[:60]} is not supported for {handler.type}; supported: "
            f"{', '.join(handler.includes) or 'none'}",
            "_include",
        )
    patients = gw.handlers["Patient"]
    gw.require_scope(caller, "Patient", scopes.READ)
    seen: dict[str, Found] = {}
    for item in page:
        if item.patient_id and item.patient_id not in seen:
            seen[item.patient_id] = patients.read(caller, item.patient_id)
    shown, _ = gw.release_rule.release(caller, list(seen.values()))
    return [entry_of(p, request, "include") for p in shown]


def links(
    request: FhirRequest, query: dict[str, str], offset: int, count: int, total: int
) -> list[dict[str, str]]:
    def url(at: int) -> str:
        params = [(k, v) for k, v in request.query if k != "_offset"]
        if at:
            params.append(("_offset", str(at)))
        suffix = f"?{urlencode(params)}" if params else ""
        return f"{request.base_url}/{request.path.strip('/')}{suffix}"

    links = [{"relation": "self", "url": url(offset)}, {"relation": "first", "url": url(0)}]
    if count and offset + count < total:
        links.append({"relation": "next", "url": url(offset + count)})
    if offset > 0:
        links.append({"relation": "previous", "url": url(max(0, offset - count))})
    return links


def entry_of(
    found: Found,
    request: FhirRequest,
    mode: str | None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    resource = (
        release.emit(found, shape(found.resource, query))
        if query and reshapes(query)
        else release.emit_resource(found)
    )
    full_url = (
        f"{request.base_url}/{resource.get('resourceType')}/{found.id}"
        if found.id
        # A computed resource without an id (a free Slot): a stable urn of its content.
        else f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, found.json)}"
    )
    entry: dict[str, Any] = {
        "fullUrl": full_url,
        "resource": resource,
    }
    if mode:
        entry["search"] = {"mode": mode}
    return entry


def bundle_of(kind: str, items: list[Found], request: FhirRequest, total: int) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": kind, "total": total}
    if items:
        bundle["entry"] = [entry_of(item, request, None) for item in items]
    if kind == "history":
        # bdl-3/bdl-4: a history entry says how each version came about.
        for entry, item in zip(bundle.get("entry", []), items, strict=True):
            first = item.version == 1
            resource_type = entry["resource"].get("resourceType", "")
            entry["request"] = {
                "method": "POST" if first else "PUT",
                "url": resource_type if first else f"{resource_type}/{item.id}",
            }
            entry["response"] = {
                "status": "201 Created" if first else "200 OK",
                "etag": f'W/"{item.version}"',
                **({"lastModified": fhir.instant(item.last_updated)} if item.last_updated else {}),
            }
    return bundle


def everything(
    gw: GatewayContext, caller: Caller, patient_id: str, request: FhirRequest
) -> FhirResponse:
    """Patient/{id}/$everything: the patient and every resource of theirs the caller's
    scopes allow reading, from each service's per-patient lists."""
    only = gw.require_scope(caller, "Patient", scopes.READ)
    if only is not None and only != patient_id:
        raise http_error(404, "not-found", f"Patient/{patient_id} not found")
    patient = gw.release_rule.require(caller, gw.handlers["Patient"].read(caller, patient_id))
    items = [patient]
    skipped = []
    wanted = {t for v in request.query if v[0] == "_type" for t in v[1].split(",") if t}
    for resource_type, handler in gw.handlers.items():
        if (
            resource_type == "Patient"
            or not handler.compartment
            or not handler.supports("search-type")
        ):
            continue
        if wanted and resource_type not in wanted:
            continue
        if (
            scopes.patients_allowed(caller.scopes, resource_type, scopes.SEARCH, caller.patient)
            is None
        ):
            skipped.append(resource_type)
            continue
        try:
            items += handler.search(caller, patient_id, {})
        except FhirHttpError as exc:
            # A service that refuses (the caller is not on its copy of the team yet) or is
            # down leaves its part out; the Bundle says so instead of failing whole.
            skipped.append(f"{resource_type} ({exc.status})")
    items, withheld = gw.release_rule.release(caller, items)
    bundle = bundle_of("searchset", items, request, len(items))
    # A searchset says what was asked and why each entry is in it.
    bundle["link"] = [
        {"relation": "self", "url": f"{request.base_url}/Patient/{patient_id}/$everything"}
    ]
    for entry in bundle.get("entry", []):
        entry["search"] = {"mode": "match"}
    bundle = note_withheld(bundle, withheld)
    if skipped:
        bundle["entry"].append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": fhir.operation_outcome(
                    [
                        fhir.Issue(
                            "warning",
                            "incomplete",
                            f"left out: {', '.join(skipped)}",
                        )
                    ]
                ),
                "search": {"mode": "outcome"},
            }
        )
    return FhirResponse(200, bundle, audit={"patient": patient_id})


def _outcome_entry_kind(bundle: dict[str, Any]) -> dict[str, Any]:
    """How a notice entry fits its Bundle: search mode `outcome` in a searchset; in a history
    Bundle every entry needs request and response instead (bdl-2, bdl-3, bdl-4), so the notice
    answers the history read itself."""
    if bundle.get("type") == "history":
        return {"request": {"method": "GET", "url": "_history"}, "response": {"status": "200 OK"}}
    return {"search": {"mode": "outcome"}}


def within(only: str | None, found: Found, route: routing.Route) -> Found:
    """A resource of another patient than the token's launch context is "not found" (the same
    answer as for one that does not exist: test-matrix D8)."""
    if only is not None and found.patient_id != only:
        raise http_error(404, "not-found", f"{route.type}/{route.id} not found")
    return found


def _limited_to(only: str, query: dict[str, str], resource_type: str) -> dict[str, str]:
    """A search under a `patient/` scope: about the launch context's patient, implicitly."""
    # A SearchQuery stays one (its repeated parameters still AND together).
    limited = SearchQuery(pairs_of(query))
    if resource_type == "Patient":
        if limited.get("_id", only) != only:
            raise http_error(403, "forbidden", "a patient/ scope reads only its own patient")
        limited["_id"] = only
        return limited
    named = [limited[n] for n in ("patient", "subject", "actor") if limited.get(n)]
    if any(reference_id(v, "Patient") != only and v != only for v in named):
        raise http_error(403, "forbidden", "a patient/ scope searches only its own patient")
    if not named:
        limited["patient"] = only
        limited.pairs.append(("patient", only))
    return limited


def _query_dict(request: FhirRequest) -> SearchQuery:
    # Repeated parameters AND together in FHIR: the filters use every one; the dict view (what
    # the handlers push down to the services) keeps the last.
    return SearchQuery([(k, v) for k, v in request.query if k != "_include"])


def _form(request: FhirRequest) -> list[tuple[str, str]]:
    if not request.body:
        return []
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise http_error(400, "structure", "the search form is not UTF-8") from None
    return parse_qsl(text, keep_blank_values=True)


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 10:
        raise http_error(400, "value", f"{name} must be a whole number", name)
    return max(low, min(int(raw), high))
