"""`POST [base]/$handoff`: a patient stepping down from an inpatient unit into the IOP.

Exactly once per bundle, without a table of the gateway's own: every downstream write carries a
request id derived from the bundle's key (its identifier, or a hash of its content), and the
services' request logs return the first result for a repeated request id. So a repeated bundle,
sequential or concurrent, reaches the same patient, episode, plan and note (test-matrix B5), and
a handoff interrupted half way completes when it is sent again. The bundle key is also stored on
the episode (an identifier), with whether this handoff registered the patient, so a repeat can
answer exactly what the first one did.

Privacy: inbound security labels (meta.security, e.g. R, PSY, SUD under 42 CFR Part 2) are kept on
each inbound resource copied into the plan, and the plan and episode carry the union of them
(a resource derived from labelled data carries its sources' labels: test-matrix C7). The team
note gives counts and references, never clinical content.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from iopcare.careplan.v1 import careplan_service_pb2 as careplan_pb
from iopcare.gateway import codes, handoff_content, intake, scopes
from iopcare.gateway.bundles import references
from iopcare.gateway.client import Caller
from iopcare.gateway.errors import FhirHttpError, Problem, http_error
from iopcare.gateway.handoff_content import Entry
from iopcare.gateway.http import FhirRequest, FhirResponse, GatewayContext
from iopcare.gateway.resources.base import Found
from iopcare.gateway.resources.careplan import PatientHandler
from iopcare.kit import fhir
from iopcare.notes.v1 import notes_service_pb2 as notes_pb

BUNDLE_TYPES = ("document", "transaction", "collection")
HANDOFF_ID_SYSTEM = "https://iopcare.org/fhir/sid/handoff-bundle"
#: The hash of the content a handoff took in, beside its key on the episode: a later Bundle under
#: the same identifier is a repeat only if its content hashes the same.
HANDOFF_CONTENT_SYSTEM = "https://iopcare.org/fhir/sid/handoff-bundle-content"
PATIENT_CREATED_EXT = "https://iopcare.org/fhir/StructureDefinition/handoff-registered-patient"
IOP_TYPE = {
    "coding": [
        {
            "system": "https://iopcare.org/fhir/CodeSystem/level-of-care",
            "code": "iop",
            "display": "Intensive outpatient program",
        }
    ]
}
CONDITIONS = ("Condition",)
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
MEDICATIONS = ("MedicationRequest", "MedicationStatement")
ALLERGIES = ("AllergyIntolerance",)
#: Types taken in as they are (copied into the plan) or used (Patient, ServiceRequest). A
#: Composition, Observations, the discharging Practitioner and Organization are taken in by their
#: own steps, or listed as not taken in with the reason.
USED = {"Patient", "ServiceRequest", *CONDITIONS, *MEDICATIONS, *ALLERGIES}
#: What each write of a handoff needs from the caller's scopes.
NEEDED_SCOPES = (
    ("Patient", scopes.CREATE),
    ("EpisodeOfCare", scopes.CREATE),
    ("CarePlan", scopes.CREATE),
    ("Communication", scopes.CREATE),
)


def bundle_key(bundle: dict[str, Any]) -> str:
    """What makes two posts the same handoff: the Bundle's identifier, else its content."""
    identifier = bundle.get("identifier")
    if isinstance(identifier, dict) and identifier.get("value"):
        return f"id:{identifier.get('system', '')}|{identifier['value']}"
    return "sha256:" + content_digest(bundle)


def content_digest(bundle: dict[str, Any]) -> str:
    """The hash of what a Bundle carries (not its id, meta or timestamp, which a resend may
    change): two posts under one identifier are one handoff only if this is the same."""
    canonical = {k: v for k, v in bundle.items() if k not in ("id", "meta", "timestamp")}
    return hashlib.sha256(
        json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def reused_identifier(bundle: dict[str, Any]) -> FhirHttpError:
    """409: another handoff was taken in under this Bundle's identifier. Answering with the first
    one's result would silently drop this one (issue 10, defect 13); nothing of it is written."""
    identifier = bundle.get("identifier") or {}
    named = f"{identifier.get('system', '')}|{identifier.get('value', '')}"
    return http_error(
        409,
        "conflict",
        f"a different handoff was already taken in under Bundle.identifier {named[:200]}; "
        "a Bundle sent again under its identifier must carry the same content (a new handoff "
        "needs a new identifier)",
        "Bundle.identifier",
    )


def request_id(key: str, step: str) -> str:
    return f"handoff-{hashlib.sha256(key.encode()).hexdigest()[:32]}-{step}"


def labels_of(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The union of the security labels of the resources (by system and code)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in resources:
        for label in resource.get("meta", {}).get("security", []):
            seen.setdefault((label.get("system", ""), label.get("code", "")), label)
    return list(seen.values())


def validate(
    data: Any, max_entries: int
) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """The whole bundle checked before anything is written: FHIR R4 validity (every entry,
    with element paths), the bundle type, a Patient with an identifier. Returns the bundle and
    its (fullUrl, resource) entries."""
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise http_error(400, "invalid", "$handoff takes a Bundle", "resourceType")
    if data.get("type") not in BUNDLE_TYPES:
        raise http_error(
            422,
            "invalid",
            f"a handoff Bundle is a document, transaction or collection, not {data.get('type')!r}",
            "Bundle.type",
        )
    raw = data.get("entry", [])
    if len(raw) > max_entries:
        raise http_error(413, "too-costly", f"at most {max_entries} entries", "Bundle.entry")
    _, model = fhir.parse_document(data, "Bundle", max_bytes=2**62)
    codes.check(model, "Bundle")
    entries = []
    for index, item in enumerate(raw):
        resource = item.get("resource")
        if isinstance(resource, dict):
            entries.append((str(item.get("fullUrl", "")), resource))
        else:
            raise http_error(
                422, "required", "each entry needs a resource", f"Bundle.entry[{index}]"
            )
    handoff_content.check_document(data, handoff_content.entries_of(entries))
    patients = [r for _, r in entries if r.get("resourceType") == "Patient"]
    if not patients:
        raise http_error(422, "required", "a handoff Bundle needs a Patient", "Bundle.entry")
    if not any(i.get("system") and i.get("value") for i in patients[0].get("identifier", [])):
        raise http_error(
            422,
            "required",
            "the Patient needs an identifier with system and value (e.g. the hospital MRN)",
            "Bundle.entry.resource.ofType(Patient).identifier",
        )
    return data, entries


def _contained(
    resource: dict[str, Any],
    local_id: str,
    patient_ref: str,
    patient_urls: set[str],
    local: dict[str, str],
) -> dict[str, Any]:
    """An inbound resource as a contained resource of the plan: its references to the patient
    point at our Patient, to other copied entries at their local ids, and to anything else
    keep only a display (a contained resource must not dangle into the sender's server)."""
    copy: dict[str, Any] = json.loads(json.dumps(resource))
    copy["id"] = local_id
    copy.pop("contained", None)  # dom-2: contained resources do not contain others
    meta = copy.pop("meta", {})
    if meta.get("security"):
        copy["meta"] = {"security": meta["security"]}  # dom-4: no versionId or lastUpdated
    copy.pop("text", None)
    for reference in references(copy):
        target = reference["reference"]
        if target in patient_urls:
            reference["reference"] = patient_ref
        elif target in local:
            reference["reference"] = f"#{local[target]}"
        else:
            reference.pop("reference")
            reference.setdefault("display", f"{target.split('/')[0][:40]} in the handoff bundle")
    return copy


def handoff(gateway: GatewayContext, caller: Caller, request: FhirRequest) -> FhirResponse:
    for resource_type, letter in NEEDED_SCOPES:
        gateway.require_all_patients(caller, resource_type, letter)
    content_type = request.header("content-type").split(";")[0].strip().lower()
    if content_type and "json" not in content_type:
        raise http_error(415, "not-supported", "send the Bundle as application/fhir+json")
    bundle, entries = validate(
        fhir.load_json(request.body, max_bytes=gateway.max_body_bytes),
        gateway.settings.max_bundle_entries,
    )
    key = bundle_key(bundle)
    digest = content_digest(bundle)
    try:
        return _take_in(gateway, caller, bundle, entries, key, digest)
    except FhirHttpError as exc:
        # A step's request id (derived from the key) already stands for a different request: a
        # different Bundle was taken in under this identifier.
        if exc.reason == "REQUEST_ID_REUSED":
            raise reused_identifier(bundle) from None
        raise


@dataclass
class _Inbound:
    """What a handoff Bundle brings: every resource, their labels' union, the referral, and the
    clinical entries copied into the plan with the local ids they get there."""

    resources: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    referral: dict[str, Any] | None
    copied: list[tuple[str, dict[str, Any]]]
    local_ids: list[str]
    #: Each copied entry's fullUrl and Type/id, to its local id.
    local: dict[str, str]
    #: What the Bundle calls its patient (fullUrls and Patient/id).
    patient_urls: set[str]


@dataclass
class _Outcome:
    """What the handoff answers: what it created, what it matched, and its warnings."""

    created: list[str] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def parameters(self) -> dict[str, Any]:
        outcome = fhir.operation_outcome(
            [fhir.Issue(p.severity, p.code, p.diagnostics, p.expression) for p in self.warnings]
            or [fhir.Issue("information", "informational", "handoff taken in")]
        )
        return {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "outcome", "resource": outcome},
                *({"name": "created", "valueReference": {"reference": r}} for r in self.created),
                *({"name": "matched", "valueReference": {"reference": r}} for r in self.matched),
            ],
        }


def _take_in(
    gateway: GatewayContext,
    caller: Caller,
    bundle: dict[str, Any],
    entries: list[tuple[str, dict[str, Any]]],
    key: str,
    digest: str,
) -> FhirResponse:
    """The handoff's steps, each idempotent under a request id derived from `key`."""
    outcome = _Outcome()
    # 1. The patient, found or registered by identifier.
    patient, known = _register_patient(gateway, caller, entries, key)
    patient_ref = f"Patient/{patient.id}"
    # 2. The referral, and the inbound clinical content.
    inbound = _read_inbound(entries, outcome)
    # 3. The planned IOP stay with the referral.
    episode = _open_episode(gateway, caller, inbound, patient.id, known, bundle, key, digest)
    registered = next(
        (
            e.get("valueBoolean")
            for e in json.loads(episode.fhir_json).get("extension", [])
            if e.get("url") == PATIENT_CREATED_EXT
        ),
        known is None,
    )
    (outcome.created if registered else outcome.matched).append(patient_ref)
    outcome.created.append(f"EpisodeOfCare/{episode.id}")
    # 4. The draft IOP plan with the inbound content, contained with its labels.
    contained = [
        _contained(r, local_id, patient_ref, inbound.patient_urls, inbound.local)
        for local_id, (_, r) in zip(inbound.local_ids, inbound.copied, strict=True)
    ]
    additions = _plan_additions(contained, episode.id, inbound.labels)
    plan = draft_plan(gateway, caller, request_id(key, "plan"), patient.id, contained, additions)
    outcome.created.append(f"CarePlan/{plan.id}")
    # 5. What the Bundle brings besides the plan: the discharging practitioner and organization,
    # the discharge summary as a note of the stay, Observations as measures; the rest listed.
    extra = _take_in_content(gateway, caller, bundle, entries, key, patient_ref, inbound, episode)
    # 6. The intake appointment within the program's window, booked through scheduling.
    due = episode.update_time.ToDatetime(tzinfo=UTC) + timedelta(
        hours=gateway.settings.intake_window_hours
    )
    booked, problem = intake.book_intake(
        gateway, caller, request_id(key, "intake"), patient.id, plan.id, due
    )
    if booked:
        outcome.created.append(booked)
    else:
        outcome.warnings.append(Problem("incomplete", problem, None, "warning"))
    # 7. The handoff note to the team thread (counts and references, no clinical content).
    text = _note_text(patient_ref, episode.id, plan.id, contained, due, booked, extra)
    _post_note(gateway, caller, request_id(key, "note"), patient.id, text, outcome)
    outcome.created += extra.created
    outcome.warnings += extra.warnings
    return FhirResponse(
        200,
        outcome.parameters(),
        # The key's digest, not the key: a sender's Bundle identifier may embed an MRN.
        audit={"patient": patient.id, "detail": f"handoff {request_id(key, 'key')}"},
    )


def _register_patient(
    gateway: GatewayContext, caller: Caller, entries: list[tuple[str, dict[str, Any]]], key: str
) -> tuple[Any, Found | None]:
    """The patient registered (or matched) by the Bundle's Patient, and the one known before by
    an identifier (None: this handoff registered them)."""
    services = gateway.services
    inbound_patient = next(r for _, r in entries if r.get("resourceType") == "Patient")
    patient_handler = gateway.handlers["Patient"]
    assert isinstance(patient_handler, PatientHandler)
    known = None
    for identifier in inbound_patient.get("identifier", []):
        if identifier.get("system") and identifier.get("value") and known is None:
            known = patient_handler.find(caller, identifier["system"], identifier["value"])
    patient_json = {k: v for k, v in inbound_patient.items() if k not in ("id", "text", "meta")}
    kept_meta = {
        k: v for k, v in inbound_patient.get("meta", {}).items() if k in ("security", "tag")
    }
    if kept_meta:
        patient_json["meta"] = kept_meta
    patient = services.call(
        caller,
        services.careplan.RegisterPatient,
        careplan_pb.RegisterPatientRequest(
            request_id=request_id(key, "patient"), fhir_json=json.dumps(patient_json)
        ),
    ).patient
    return patient, known


def _read_inbound(entries: list[tuple[str, dict[str, Any]]], outcome: _Outcome) -> _Inbound:
    """The Bundle's content as the handoff uses it; a warning for each entry it does not."""
    inbound = [r for _, r in entries]
    patient_urls = {url for url, r in entries if r.get("resourceType") == "Patient" and url}
    patient_urls |= {
        f"Patient/{r['id']}"
        for _, r in entries
        if r.get("resourceType") == "Patient" and r.get("id")
    }
    copied = [
        (url, r)
        for url, r in entries
        if r.get("resourceType") in (*CONDITIONS, *MEDICATIONS, *ALLERGIES)
    ]
    local_ids = [f"{r['resourceType'][:4].lower()}{i}" for i, (_, r) in enumerate(copied)]
    local: dict[str, str] = {}
    for local_id, (url, r) in zip(local_ids, copied, strict=True):
        if url:
            local[url] = local_id
        if r.get("id"):
            local[f"{r['resourceType']}/{r['id']}"] = local_id
    return _Inbound(
        resources=inbound,
        labels=labels_of(inbound),
        referral=next((r for r in inbound if r.get("resourceType") == "ServiceRequest"), None),
        copied=copied,
        local_ids=local_ids,
        local=local,
        patient_urls=patient_urls,
    )


def _open_episode(
    gateway: GatewayContext,
    caller: Caller,
    inbound: _Inbound,
    patient_id: str,
    known: Found | None,
    bundle: dict[str, Any],
    key: str,
    digest: str,
) -> Any:
    """The planned IOP stay with the referral; the bundle's key and whether this handoff
    registered the patient travel with it, so a repeat answers as the first did."""
    episode_json: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "status": "planned",
        "identifier": [
            {"system": HANDOFF_ID_SYSTEM, "value": key[:200]},
            {"system": HANDOFF_CONTENT_SYSTEM, "value": digest},
        ],
        "type": [IOP_TYPE],
        "patient": {"reference": f"Patient/{patient_id}"},
        "extension": [{"url": PATIENT_CREATED_EXT, "valueBoolean": known is None}],
    }
    if inbound.referral is not None:
        reference: dict[str, Any] = {"display": _referral_display(inbound.referral)}
        if inbound.referral.get("identifier"):
            reference["identifier"] = inbound.referral["identifier"][0]
        episode_json["referralRequest"] = [reference]
    if inbound.labels:
        episode_json["meta"] = {"security": inbound.labels}
    # A repeat finds the stay this key opened, and takes it only if it came from the same
    # content. (It does not send CreateEpisode again: whether the patient was known differs
    # on a repeat, so its request would differ from the first.)
    episode = _episode_of(gateway, caller, patient_id, key, bundle, digest)
    if episode is not None:
        return episode
    services = gateway.services
    try:
        return services.call(
            caller,
            services.careplan.CreateEpisode,
            careplan_pb.CreateEpisodeRequest(
                request_id=request_id(key, "episode"), fhir_json=json.dumps(episode_json)
            ),
        ).episode
    except FhirHttpError as exc:
        # A concurrent repeat opened it first, with its own view of the patient: the stay is
        # that one, if it came from the same content.
        episode = _episode_of(gateway, caller, patient_id, key, bundle, digest)
        if exc.reason != "REQUEST_ID_REUSED" or episode is None:
            raise
        return episode


def _plan_additions(
    contained: list[dict[str, Any]], episode_id: str, labels: list[dict[str, Any]]
) -> dict[str, Any]:
    """What the draft plan carries of the handoff: the inbound conditions as what it addresses,
    medications and allergies as supporting information, all contained with their labels."""
    additions: dict[str, Any] = {
        "resourceType": "CarePlan",
        "supportingInfo": [{"reference": f"EpisodeOfCare/{episode_id}"}]
        + [
            {"reference": f"#{c['id']}"}
            for c in contained
            if c["resourceType"] in (*MEDICATIONS, *ALLERGIES)
        ],
    }
    if contained:
        additions["contained"] = contained
    addresses = [{"reference": f"#{c['id']}"} for c in contained if c["resourceType"] in CONDITIONS]
    if addresses:
        additions["addresses"] = addresses
    if labels:
        additions["meta"] = {"security": labels}
    return additions


def _note_text(
    patient_ref: str,
    episode_id: str,
    plan_id: str,
    contained: list[dict[str, Any]],
    due: datetime,
    intake_ref: str | None,
    extra: _Outcome | None = None,
) -> str:
    """The team note: counts and references, never clinical content."""
    counts = {
        "conditions": sum(1 for c in contained if c["resourceType"] in CONDITIONS),
        "medications": sum(1 for c in contained if c["resourceType"] in MEDICATIONS),
        "allergies": sum(1 for c in contained if c["resourceType"] in ALLERGIES),
    }
    return (
        f"Step-down handoff received for {patient_ref}: EpisodeOfCare/{episode_id} planned, "
        f"draft CarePlan/{plan_id} ({counts['conditions']} conditions, {counts['medications']} "
        f"medications, {counts['allergies']} allergies)" + _extra_text(extra) + ". Intake due by "
        f"{due.strftime('%Y-%m-%d %H:%M')} UTC"
        + (f"; booked: {intake_ref}." if intake_ref else "; not booked yet.")
    )


def _post_note(
    gateway: GatewayContext,
    caller: Caller,
    note_request_id: str,
    patient_id: str,
    text: str,
    outcome: _Outcome,
) -> None:
    services = gateway.services
    try:
        note = services.call(
            caller,
            services.notes.PostMessage,
            notes_pb.PostMessageRequest(
                request_id=note_request_id, patient_id=patient_id, text=text
            ),
        ).message
        outcome.created.append(f"Communication/{note.id}")
    except FhirHttpError as exc:
        # The stay and the plan exist; posting the note again is safe (same request id), so a
        # repeat of the bundle completes it.
        outcome.warnings.append(
            Problem(
                "incomplete",
                f"the team note was not posted ({exc.status}: {exc}); send the bundle again",
                None,
                "warning",
            )
        )


def _episode_of(
    gateway: GatewayContext,
    caller: Caller,
    patient_id: str,
    key: str,
    bundle: dict[str, Any],
    digest: str,
) -> Any:
    """The stay a handoff under `key` opened for the patient (None if none did); 409 when it
    was opened from other content (an episode from before content hashes were kept has none,
    and is taken as before)."""
    services = gateway.services
    episodes = services.call(
        caller,
        services.careplan.ListEpisodes,
        careplan_pb.ListEpisodesRequest(patient_id=patient_id, page_size=1000),
    ).episodes
    for episode in episodes:
        identifiers = {
            i.get("system"): i.get("value")
            for i in json.loads(episode.fhir_json).get("identifier", [])
        }
        if identifiers.get(HANDOFF_ID_SYSTEM) != key[:200]:
            continue
        if identifiers.get(HANDOFF_CONTENT_SYSTEM, digest) != digest:
            raise reused_identifier(bundle)
        return episode
    return None


def draft_plan(
    gateway: GatewayContext,
    caller: Caller,
    plan_request_id: str,
    patient_id: str,
    contained: list[dict[str, Any]],
    additions: dict[str, Any],
) -> Any:
    """The draft IOP plan from a program template (activities and goals to start from): the
    template of the first inbound ICD-10-CM diagnosis that has one; with no ICD-10-CM diagnosis
    at all (none, or only SNOMED CT codes), the program's fallback (general IOP) template, asked
    for with an empty diagnosis. Either way with the inbound content and labels from its first
    version on, under the one request id, so a repeat finds the first plan. Only a careplan
    without any template (NO_TEMPLATE) leaves a plan of its own through CreateCarePlan.
    """
    services = gateway.services
    diagnoses = [
        str(coding["code"])
        for condition in contained
        if condition["resourceType"] in CONDITIONS
        for coding in condition.get("code", {}).get("coding", [])
        if coding.get("system") == ICD10CM and coding.get("code")
    ]
    # No ICD-10-CM diagnosis: the empty one, which careplan drafts from its fallback template.
    for diagnosis in diagnoses or [""]:
        try:
            return services.call(
                caller,
                services.careplan.DraftCarePlan,
                careplan_pb.DraftCarePlanRequest(
                    request_id=plan_request_id,
                    patient_id=patient_id,
                    diagnosis_code=diagnosis,
                    additions_fhir_json=json.dumps(additions),
                ),
            ).care_plan
        except FhirHttpError as exc:
            if exc.reason != "NO_TEMPLATE":
                raise
    plan_json = {
        **additions,
        "status": "draft",
        "intent": "plan",
        "title": "IOP treatment plan (draft from the step-down handoff)",
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    return services.call(
        caller,
        services.careplan.CreateCarePlan,
        careplan_pb.CreateCarePlanRequest(
            request_id=plan_request_id, fhir_json=json.dumps(plan_json)
        ),
    ).care_plan


def _referral_display(referral: dict[str, Any]) -> str:
    code = referral.get("code", {})
    text = code.get("text") or next(
        (c.get("display") for c in code.get("coding", []) if c.get("display")), None
    )
    return f"Referral: {text}"[:200] if text else "Referral from the inpatient unit"


def _extra_text(extra: _Outcome | None) -> str:
    """What the note says of the content taken in besides the plan (references and counts)."""
    if extra is None:
        return ""
    documents = [r for r in extra.created if r.startswith("DocumentReference/")]
    measures = sum(1 for r in extra.created if r.startswith("Observation/"))
    text = f"; {measures} measure{'' if measures == 1 else 's'} recorded"
    if documents:
        text += f"; discharge summary {documents[0]}"
    skipped = sum(1 for w in extra.warnings if w.code == "not-supported")
    if skipped:
        text += f"; {skipped} entries not taken in (listed in the handoff's answer)"
    return text


@dataclass
class _Content:
    """The Bundle's entries as the content steps see them, and what they decided of each."""

    entries: list[Entry]
    composition: Entry | None
    #: Entries taken in (by index); every other one is listed with its reason.
    kept: set[int] = field(default_factory=set)
    reasons: dict[int, str] = field(default_factory=dict)


def _take_in_content(
    gateway: GatewayContext,
    caller: Caller,
    bundle: dict[str, Any],
    entries: list[tuple[str, dict[str, Any]]],
    key: str,
    patient_ref: str,
    inbound: _Inbound,
    episode: Any,
) -> _Outcome:
    """Steps 5a-c (ADR 0030), each under request ids derived from the bundle key and the entry:
    the discharging practitioner and organization registered, the Composition's narrative as a
    discharge summary note of the stay, each Observation careplan accepts as a measure; then one
    issue (not-supported, with the reason) for every entry not taken in."""
    done = _Outcome()
    all_entries = handoff_content.entries_of(entries)
    content = _Content(all_entries, next((e for e in all_entries if e.type == "Composition"), None))
    first_of = {"Patient": True, "ServiceRequest": True}
    for entry in all_entries:
        if entry.type in first_of:
            if first_of[entry.type]:
                content.kept.add(entry.index)
                first_of[entry.type] = False
            else:
                content.reasons[entry.index] = (
                    "a handoff takes in one patient"
                    if entry.type == "Patient"
                    else "the first ServiceRequest is the referral; others stay in the sender's "
                    "record"
                )
        elif entry.type in USED:
            content.kept.add(entry.index)
    author, author_display = _register_discharging(gateway, caller, key, content, done)
    _import_document(
        gateway, caller, bundle, key, patient_ref, episode.id, author, author_display, content, done
    )
    _record_measures(
        gateway, caller, key, patient_ref, inbound.patient_urls, content, done, inbound.labels
    )
    for entry in all_entries:
        if entry.index not in content.kept:
            reason = content.reasons.get(entry.index) or handoff_content.NOT_KEPT.get(
                entry.type,
                f"no iopcare service keeps {entry.type} resources; it stays in the sender's record",
            )
            done.warnings.append(handoff_content.skipped(entry, reason))
    return done


def _why(exc: FhirHttpError) -> str:
    """A service's refusal in words: each of its issues (field violations name the element)."""
    parts = [p.diagnostics + (f" ({p.expression})" if p.expression else "") for p in exc.problems]
    return "; ".join(parts)[:600] or str(exc)


def _refused(exc: FhirHttpError) -> bool:
    """A service's refusal of one entry (invalid, or not allowed): listed, not fatal."""
    return exc.status in (400, 403, 422) and exc.reason != "REQUEST_ID_REUSED"


def _register_discharging(
    gateway: GatewayContext, caller: Caller, key: str, content: _Content, done: _Outcome
) -> tuple[str, str]:
    """The discharging practitioner registered (and the sending organization as their role):
    their `Practitioner/{id}` (empty when not registered) and a display of both."""
    composition = content.composition.resource if content.composition else None
    practitioner, organization = handoff_content.discharging(content.entries, composition)
    for entry in content.entries:
        if entry.type in ("Practitioner", "Organization") and entry not in (
            practitioner,
            organization,
        ):
            content.reasons[entry.index] = (
                f"only the discharging {entry.type.lower()} (the Composition's "
                f"{'author' if entry.type == 'Practitioner' else 'custodian'}) is registered"
            )
    names = [handoff_content.name_of(e.resource) for e in (practitioner, organization) if e]
    display = ", ".join(n for n in names if n)[:200]
    if practitioner is None:
        if organization is not None:
            content.reasons[organization.index] = (
                "the registry keeps an organization as a practitioner's role, and the Bundle "
                "names no practitioner"
            )
        return "", display
    services = gateway.services
    if not scopes.allows(caller.scopes, "Practitioner", scopes.CREATE):
        for named in (practitioner, organization):
            if named is not None:
                content.reasons[named.index] = "the token may not create Practitioners"
        return "", display
    try:
        registered = services.call(
            caller,
            services.careplan.RegisterPractitioner,
            careplan_pb.RegisterPractitionerRequest(
                request_id=request_id(key, "practitioner"),
                fhir_json=handoff_content.practitioner_json(practitioner.resource),
            ),
        ).practitioner
    except FhirHttpError as exc:
        if not _refused(exc):
            raise
        for named in (practitioner, organization):
            if named is not None:
                content.reasons[named.index] = f"the registry refused it: {_why(exc)}"
        return "", display
    content.kept.add(practitioner.index)
    done.created.append(f"Practitioner/{registered.id}")
    if organization is not None:
        try:
            role = services.call(
                caller,
                services.careplan.RegisterPractitionerRole,
                careplan_pb.RegisterPractitionerRoleRequest(
                    request_id=request_id(key, "practitioner-role"),
                    fhir_json=handoff_content.role_json(registered.id, organization.resource),
                ),
            ).practitioner_role
        except FhirHttpError as exc:
            if not _refused(exc):
                raise
            content.reasons[organization.index] = f"the registry refused it: {_why(exc)}"
        else:
            content.kept.add(organization.index)
            done.created.append(f"PractitionerRole/{role.id}")
    return f"Practitioner/{registered.id}", display


def _written_at(value: Any) -> datetime | None:
    """The Composition's date as an instant (a date alone or no zone: taken as UTC)."""
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _import_document(
    gateway: GatewayContext,
    caller: Caller,
    bundle: dict[str, Any],
    key: str,
    patient_ref: str,
    episode_id: str,
    author: str,
    author_display: str,
    content: _Content,
    done: _Outcome,
) -> None:
    """The Composition's sections as the narrative of a discharge summary note (LOINC 18842-5)
    of the stay, with the labels of the Bundle, the Composition and the entries it names."""
    if content.composition is None:
        return
    entry = content.composition
    for other in content.entries:
        if other.type == "Composition" and other.index != entry.index:
            content.reasons[other.index] = "only the first Composition is the discharge document"
    if not scopes.allows(caller.scopes, "DocumentReference", scopes.CREATE):
        content.reasons[entry.index] = "the token may not create DocumentReferences"
        return
    composition = entry.resource
    level, sensitivity, _ = handoff_content.document_labels(bundle, composition, content.entries)
    identifier = composition.get("identifier") or bundle.get("identifier") or {}
    source = (
        f"{identifier.get('system', '')}|{identifier['value']}"[:400]
        if identifier.get("value")
        else ""
    )
    request = notes_pb.ImportDocumentRequest(
        request_id=request_id(key, "document"),
        note=notes_pb.NoteInput(
            patient_id=patient_ref.split("/")[1],
            kind="discharge",
            title=str(composition.get("title") or "Discharge summary")[:200],
            text=handoff_content.document_text(composition, content.entries),
            confidentiality=level,
            sensitivity=sensitivity,
        ),
        episode_id=episode_id,
        author=author,
        author_display=author_display,
        source_identifier=source,
    )
    written = _written_at(composition.get("date"))
    if written is not None:
        request.document_time.FromDatetime(written)
    services = gateway.services
    try:
        note = services.call(caller, services.notes.ImportDocument, request)
    except FhirHttpError as exc:
        if exc.status >= 500:
            # As the team note: the stay and the plan stand, and sending the bundle again takes
            # the document in (same request id). Not kept: the outcome lists it as not taken in.
            content.reasons[entry.index] = f"notes was unavailable ({exc.status}); send again"
            done.warnings.append(
                Problem(
                    "incomplete",
                    f"the discharge summary was not taken in ({exc.status}: {exc}); send the "
                    "bundle again",
                    f"Bundle.entry[{entry.index}]",
                    "warning",
                )
            )
            return
        if not _refused(exc):
            raise
        content.reasons[entry.index] = f"notes refused the discharge summary: {_why(exc)}"
        return
    content.kept.add(entry.index)
    done.created.append(f"DocumentReference/{note.id}")


def _record_measures(
    gateway: GatewayContext,
    caller: Caller,
    key: str,
    patient_ref: str,
    patient_urls: set[str],
    content: _Content,
    done: _Outcome,
    handoff_labels: list[dict[str, Any]],
) -> None:
    """The latest reading of each measure careplan accepts (vitals, labs, drug screens, PHQ-9 and
    other LOINC measures) recorded as a measure of the patient; the others listed with the reason
    (careplan's, or an earlier reading of the same measure)."""
    allowed = scopes.allows(caller.scopes, "Observation", scopes.CREATE)
    services = gateway.services
    measurable = []
    for entry in content.entries:
        if entry.type != "Observation":
            continue
        problem = handoff_content.measure_problem(entry.resource, patient_urls)
        if problem is None and not allowed:
            problem = "the token may not create Observations"
        if problem is None:
            measurable.append(entry)
        else:
            content.reasons[entry.index] = problem
    latest, earlier = handoff_content.latest_per_measure(measurable)
    content.reasons.update(earlier)
    for entry in latest:
        try:
            recorded = services.call(
                caller,
                services.careplan.RecordMeasure,
                careplan_pb.RecordMeasureRequest(
                    request_id=request_id(key, f"measure-{entry.index}"),
                    fhir_json=handoff_content.as_measure(
                        entry.resource, patient_ref, patient_urls, handoff_labels
                    ),
                ),
            )
        except FhirHttpError as exc:
            if not _refused(exc):
                raise
            content.reasons[entry.index] = f"careplan does not take it as a measure: {_why(exc)}"
        else:
            content.kept.add(entry.index)
            done.created.append(f"Observation/{recorded.observation_id}")
