"""The CapabilityStatement and OperationDefinitions, generated from the handler registry."""

from __future__ import annotations

import copy
from typing import Any

from iopcare.gateway import registry, uscore
from iopcare.gateway.resources.base import ResourceHandler
from iopcare.kit.fhir import FHIR_VERSION

HANDOFF_URL = "https://iopcare.org/fhir/OperationDefinition/handoff"
HANDOFF_SUMMARY_URL = "https://iopcare.org/fhir/OperationDefinition/handoff-summary"
EXPORT_CSV_URL = "https://iopcare.org/fhir/OperationDefinition/export-csv"
SUMMARY_PARAMS = ["true", "false", "text", "data", "count"]

TRANSACTION_RULE = (
    "POST [base] takes batch and transaction Bundles (urn:uuid references resolved). A "
    "transaction is all or nothing: every entry is validated before anything is written, and a "
    "transaction is accepted only when it writes at most one resource, which makes it atomic by "
    "construction. A transaction with several writes is refused (422, code not-supported): the "
    "resources live in separate services with separate databases (careplan, scheduling, notes) "
    "and no service applies several creates in one database transaction yet, so the gateway "
    "cannot make them all-or-nothing. Send such a set as a batch (each entry on its own) or "
    "through $handoff."
)


#: The OperationDefinitions served at OperationDefinition/{code}, by code.
OPERATION_DEFINITIONS: dict[str, dict[str, Any]] = {
    "handoff": {
        "resourceType": "OperationDefinition",
        "id": "handoff",
        "url": HANDOFF_URL,
        "name": "Handoff",
        "title": "Step-down handoff into the IOP",
        "status": "active",
        "kind": "operation",
        "code": "handoff",
        "system": True,
        "type": False,
        "instance": False,
        "affectsState": True,
        "description": (
            "Accepts a Bundle (document, transaction or collection) from an inpatient unit "
            "holding at least a Patient with an identifier. The whole bundle is validated "
            "first. Then, once per bundle (its identifier, or a hash of its content), the "
            "patient is found or registered by identifier, a planned IOP EpisodeOfCare is "
            "opened with the referral, a draft IOP CarePlan addresses the inbound conditions "
            "with medications and allergies as supporting information (contained, with their "
            "security labels), and a handoff note is posted to the team thread. A repeat of "
            "the same bundle returns the first result. Entries of other types are reported "
            "as warnings. The intake appointment is booked within the program's window "
            "(default 72 hours) in the first free slot of a calendar serving session type "
            "intake; when there is none, a warning says so and gives the due time."
        ),
        "parameter": [
            {
                "name": "resource",
                "use": "in",
                "min": 1,
                "max": "1",
                "type": "Bundle",
                "documentation": "The handoff bundle, as the request body.",
            },
            {
                "name": "outcome",
                "use": "out",
                "min": 1,
                "max": "1",
                "type": "OperationOutcome",
                "documentation": "Warnings (unsupported entries, steps not taken).",
            },
            {
                "name": "created",
                "use": "out",
                "min": 0,
                "max": "*",
                "type": "Reference",
                "documentation": "What this handoff created.",
            },
            {
                "name": "matched",
                "use": "out",
                "min": 0,
                "max": "*",
                "type": "Reference",
                "documentation": "What already existed (a known patient).",
            },
        ],
    },
    "handoff-summary": {
        "resourceType": "OperationDefinition",
        "id": "handoff-summary",
        "url": HANDOFF_SUMMARY_URL,
        "name": "HandoffSummary",
        "title": "Transfer summary for the next provider",
        "status": "active",
        "kind": "operation",
        "code": "handoff-summary",
        "resource": ["EpisodeOfCare"],
        "system": False,
        "type": False,
        "instance": True,
        "affectsState": False,
        "description": (
            "A FHIR document Bundle (Composition first) for the provider who takes the "
            "patient on: the IOP course and level-of-care history, plan and goals with "
            "progress, measures over time, attendance, current medications and the care team. "
            "Resources labelled ETH, SUD, PSY or PSYTHPN are withheld (42 CFR Part 2 needs a "
            "Consent the gateway cannot check yet) and the document says how many."
        ),
        "parameter": [
            {
                "name": "return",
                "use": "out",
                "min": 1,
                "max": "1",
                "type": "Bundle",
                "documentation": "The document Bundle.",
            }
        ],
    },
    "export-csv": {
        "resourceType": "OperationDefinition",
        "id": "export-csv",
        "url": EXPORT_CSV_URL,
        "name": "ExportCsv",
        "title": "Billing export of a period's Encounters",
        "status": "active",
        "kind": "operation",
        "code": "export-csv",
        "resource": ["Encounter"],
        "system": False,
        "type": True,
        "instance": False,
        "affectsState": False,
        "description": (
            "The Encounters of attended sessions in a period as CSV for a billing system (one "
            "row per Encounter: patient, date, billing code, units, rendering practitioner), in "
            "a Binary (text/csv). Every patient's for billing staff and administrators, one "
            "patient's for their care team; only Encounters the release rule lets out to the "
            "caller (the X-Withheld-Encounters header counts the others)."
        ),
        "parameter": [
            {
                "name": "start",
                "use": "in",
                "min": 1,
                "max": "1",
                "type": "date",
                "documentation": "The first day of the period.",
            },
            {
                "name": "end",
                "use": "in",
                "min": 1,
                "max": "1",
                "type": "date",
                "documentation": "The last day of the period (included; at most 93 days).",
            },
            {
                "name": "patient",
                "use": "in",
                "min": 0,
                "max": "1",
                "type": "string",
                "documentation": "One patient's logical id; absent: every patient.",
            },
            {
                "name": "return",
                "use": "out",
                "min": 1,
                "max": "1",
                "type": "Binary",
                "documentation": "The CSV (contentType text/csv).",
            },
        ],
    },
}


def operation_definition(code: str) -> dict[str, Any]:
    """The OperationDefinition of `code` (KeyError: none)."""
    return copy.deepcopy(OPERATION_DEFINITIONS[code])


OPERATIONS = ("handoff", "handoff-summary")


def _resource_entry(handler: type[ResourceHandler]) -> dict[str, Any]:
    """The CapabilityStatement's entry of one handler: what its overrides support."""
    interactions = handler.interactions()
    entry: dict[str, Any] = {
        "type": handler.type,
        "interaction": [{"code": code} for code in interactions],
        "versioning": "versioned-update" if "update" in interactions else "versioned",
        "readHistory": "vread" in interactions and handler.reads_old_versions,
        "updateCreate": False,
        "conditionalCreate": "create" in interactions and "search-type" in interactions,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
    }
    profiles = uscore.supported_profiles(handler.type)
    if profiles:
        entry["supportedProfile"] = profiles
    if handler.documentation:
        entry["documentation"] = handler.documentation
    if "search-type" in interactions:
        entry["searchParam"] = [
            {"name": p.name, "type": p.type, "documentation": p.documentation}
            for p in handler.search_params()
        ]
        if handler.includes:
            entry["searchInclude"] = list(handler.includes)
    if handler.type == "EpisodeOfCare":
        entry["operation"] = [{"name": "handoff-summary", "definition": HANDOFF_SUMMARY_URL}]
    if handler.type == "Encounter":
        entry["operation"] = [{"name": "export-csv", "definition": EXPORT_CSV_URL}]
    if handler.type == "Patient":
        entry["operation"] = [
            {
                "name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
            }
        ]
    return entry


def capability_statement(base_url: str, max_body_bytes: int, software_version: str) -> Any:
    resources = [_resource_entry(handler) for handler in registry.HANDLERS]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-27",
        "kind": "instance",
        # US Core 6.1's server requirements, for the types it profiles (docs/conformance.md).
        "instantiates": [uscore.SERVER_CAPABILITY],
        "software": {"name": "iopcare gateway", "version": software_version},
        "implementation": {"description": "iopcare FHIR R4 gateway", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    f"{TRANSACTION_RULE} Request bodies larger than {max_body_bytes} bytes are "
                    "refused with 413 before they are read. JSON only (XML: 415 for bodies, 406 "
                    "for responses). Search: records are searched one patient at a time "
                    f"(patient or subject; Schedule and Slot, which are no patient's, "
                    f"without); repeated parameters AND together; _count (paging with _offset "
                    f"links), _summary ({', '.join(SUMMARY_PARAMS)}) and _include (the patient) "
                    f"are supported. Clinical notes go to system callers only as the notes "
                    f"service discloses them (DiscloseNote: Part 2 notes under the patient's "
                    f"active Consent naming the caller, with NORDSCLCD and the 42 CFR 2.32 "
                    f"notice)."
                ),
                "security": {
                    "cors": False,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": (
                                        "http://terminology.hl7.org/CodeSystem/restful-security-service"
                                    ),
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": (
                        "Bearer JWT (ES384 or RS384; iss, aud, exp checked; short-lived). SMART "
                        "v2 scopes (system/CarePlan.rs, user/Appointment.cruds) and v1 "
                        "(system/CarePlan.read); patient/ scopes apply to the token's patient "
                        "claim (launch context). The caller's "
                        "token is forwarded to the services, which apply care-team and label "
                        "rules. Every request is audited."
                    ),
                },
                "resource": resources,
                "interaction": [
                    {"code": "batch"},
                    {"code": "transaction", "documentation": TRANSACTION_RULE},
                ],
                "operation": [{"name": code, "definition": HANDOFF_URL} for code in OPERATIONS],
            }
        ],
    }
