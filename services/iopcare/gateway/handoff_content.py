"""What a `$handoff` keeps of a discharge document beyond the plan (ADR 0030): the Composition's
narrative as a discharge summary note, Observations as measures, the discharging practitioner and
organization in the registry, and one OperationOutcome issue for every entry it does not keep.

The checks and the rendering here are pure; the writes (each under a request id derived from the
bundle key and the entry, ADR 0012) are `handoff.py`'s.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from iopcare.gateway.bundles import references
from iopcare.gateway.errors import Problem, http_error
from iopcare.kit import labels

LOINC = "http://loinc.org"
DISCHARGE_SUMMARY = "18842-5"
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
#: Sensitivity codes a note carries (kit.privacy), and their ranks of confidentiality.
NOTE_SENSITIVITY = {"PSYTHPN", "PSY", "ETH", "SUD"}
CONFIDENTIALITY_ORDER = ("U", "L", "M", "N", "R", "V")
MAX_NOTE_TEXT = 100_000
#: Why an entry of a type no service keeps is not taken in.
NOT_KEPT = {
    "Procedure": "no iopcare service keeps procedures; the discharge summary note lists the ones "
    "its sections name",
    "Immunization": "no iopcare service keeps immunizations; the discharge summary note lists "
    "the ones its sections name",
    "Encounter": "the inpatient stay stays in the sender's record; the IOP stay is the "
    "EpisodeOfCare this handoff opens",
}


@dataclass(frozen=True)
class Entry:
    """One entry of the handoff Bundle: its position, fullUrl and resource."""

    index: int
    url: str
    resource: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.resource.get("resourceType", ""))

    @property
    def names(self) -> set[str]:
        """What a reference to this entry may say: its fullUrl, Type/id, or a URL ending in it."""
        found = {self.url} if self.url else set()
        if self.resource.get("id"):
            found.add(f"{self.type}/{self.resource['id']}")
        return found


def entries_of(raw: list[tuple[str, dict[str, Any]]]) -> list[Entry]:
    return [Entry(i, url, r) for i, (url, r) in enumerate(raw)]


def resolve(reference: str, entries: list[Entry]) -> Entry | None:
    """The entry a reference names (by fullUrl, Type/id, or an absolute URL ending in Type/id)."""
    for entry in entries:
        names = entry.names
        if reference in names or any(
            reference.endswith("/" + n) for n in names if not n.startswith(("urn:", "http"))
        ):
            return entry
    return None


def _sections(sections: list[dict[str, Any]], path: str) -> list[tuple[str, dict[str, Any]]]:
    """Every section with its element path, nested ones too."""
    found = []
    for i, section in enumerate(sections):
        here = f"{path}.section[{i}]"
        found.append((here, section))
        found += _sections(section.get("section", []), here)
    return found


def check_document(bundle: dict[str, Any], entries: list[Entry]) -> dict[str, Any] | None:
    """A document Bundle starts with its Composition, and every entry a section names is in the
    Bundle (422 naming the element otherwise, before anything is written). Returns the
    Composition (a collection or transaction may carry one too; None without)."""
    first = entries[0] if entries else None
    if bundle.get("type") == "document" and (first is None or first.type != "Composition"):
        raise http_error(
            422,
            "structure",
            "a document Bundle starts with its Composition (bdl-11); the first entry is "
            f"{first.type if first else 'missing'}",
            "Bundle.entry[0]",
        )
    composition = next((e for e in entries if e.type == "Composition"), None)
    if composition is None:
        return None
    base = f"Bundle.entry[{composition.index}].resource"
    for path, section in _sections(composition.resource.get("section", []), base):
        for j, item in enumerate(section.get("entry", [])):
            target = item.get("reference", "")
            if target and not target.startswith("#") and resolve(target, entries) is None:
                raise http_error(
                    422,
                    "not-found",
                    f"the Composition's section {section.get('title', '')!r} names "
                    f"{target[:200]}, which is not in the Bundle",
                    f"{path}.entry[{j}]",
                )
    return composition.resource


class _Text(HTMLParser):
    """The text of an XHTML narrative: one line per block, table cells separated."""

    BLOCKS = frozenset({"p", "div", "tr", "li", "br", "h1", "h2", "h3", "h4", "table"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def narrative_text(div: str) -> str:
    parser = _Text()
    parser.feed(div)
    lines = (
        re.sub(r"[ \t\r\f\v]+", " ", line).strip(" |") for line in "".join(parser.parts).split("\n")
    )
    return "\n".join(line for line in lines if line)


def _code_text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding", []):
        if coding.get("display") or coding.get("code"):
            return str(coding.get("display") or coding.get("code"))
    return ""


def entry_line(resource: dict[str, Any]) -> str:
    """One line naming what an entry is (its type, code or medication, value, date)."""
    kind = resource.get("resourceType", "")
    what = (
        _code_text(resource.get("code"))
        or _code_text(resource.get("medicationCodeableConcept"))
        or _code_text(resource.get("vaccineCode"))
    )
    value = ""
    if isinstance(resource.get("valueQuantity"), dict):
        quantity = resource["valueQuantity"]
        value = f"{quantity.get('value', '')} {quantity.get('unit', quantity.get('code', ''))}"
    elif "valueInteger" in resource:
        value = str(resource["valueInteger"])
    elif resource.get("valueCodeableConcept"):
        value = _code_text(resource["valueCodeableConcept"])
    elif resource.get("valueString"):
        value = str(resource["valueString"])
    when = next(
        (
            str(resource[k])
            for k in ("effectiveDateTime", "occurrenceDateTime", "performedDateTime", "authoredOn")
            if resource.get(k)
        ),
        "",
    )
    line = f"{kind}: {what or 'not coded'}"
    if value.strip():
        line += f" = {value.strip()}"
    if when:
        line += f" ({when})"
    return line


def document_text(composition: dict[str, Any], entries: list[Entry]) -> str:
    """The discharge summary as text: the Composition's title and date, then each section's
    title, narrative, and a line for each entry it names."""
    lines = [str(composition.get("title") or "Discharge summary")]
    if composition.get("date"):
        lines.append(f"Date: {composition['date']}")
    for _, section in _sections(composition.get("section", []), ""):
        lines.append("")
        lines.append(f"## {section.get('title') or _code_text(section.get('code')) or 'Section'}")
        div = (section.get("text") or {}).get("div")
        if div:
            lines.append(narrative_text(str(div)))
        for item in section.get("entry", []):
            target = resolve(str(item.get("reference", "")), entries)
            if target is not None:
                lines.append(f"- {entry_line(target.resource)}")
        if section.get("emptyReason"):
            lines.append(f"(empty: {_code_text(section['emptyReason'])})")
    text = "\n".join(lines).strip()
    if len(text) > MAX_NOTE_TEXT:
        text = text[: MAX_NOTE_TEXT - 40].rstrip() + "\n[truncated by the handoff]"
    return text


def document_labels(
    bundle: dict[str, Any], composition: dict[str, Any], entries: list[Entry]
) -> tuple[str, list[str], list[str]]:
    """The note's labels from the Bundle's, the Composition's (its `confidentiality` too) and its
    sections' security labels: (confidentiality, sensitivity codes a note carries, codes it
    cannot carry, which raise it to R)."""
    codes: list[str] = []
    for holder in (bundle, composition):
        codes += [str(s.get("code", "")) for s in holder.get("meta", {}).get("security", [])]
    # R4 sections carry no labels of their own: a section's labels are those of the entries it
    # names, whose content its narrative repeats (test-matrix C7).
    codes += [str(s.get("code", "")) for s in entry_labels(entries, composition)]
    if composition.get("confidentiality"):
        codes.append(str(composition["confidentiality"]))
    level = "N"
    for code in codes:
        if code in CONFIDENTIALITY_ORDER and CONFIDENTIALITY_ORDER.index(
            code
        ) > CONFIDENTIALITY_ORDER.index(level):
            level = code
    sensitivity = sorted({c for c in codes if c in NOTE_SENSITIVITY})
    other = sorted(
        {c for c in codes if c and c not in NOTE_SENSITIVITY and c not in CONFIDENTIALITY_ORDER}
    )
    if other and CONFIDENTIALITY_ORDER.index(level) < CONFIDENTIALITY_ORDER.index("R"):
        level = "R"
    if level in ("U", "L", "M"):
        level = "N"
    return level, sensitivity, other


def entry_labels(entries: list[Entry], composition: dict[str, Any]) -> list[dict[str, Any]]:
    """The labels of the entries the Composition's sections name (their narrative repeats them,
    so the note carries them: test-matrix C7)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for _, section in _sections(composition.get("section", []), ""):
        for item in section.get("entry", []):
            target = resolve(str(item.get("reference", "")), entries)
            if target is None:
                continue
            for label in target.resource.get("meta", {}).get("security", []):
                found.setdefault((label.get("system", ""), label.get("code", "")), label)
    return list(found.values())


def skipped(entry: Entry, reason: str) -> Problem:
    """The OperationOutcome issue of an entry not taken in."""
    name = entry.url or (f"{entry.type}/{entry.resource['id']}" if entry.resource.get("id") else "")
    return Problem(
        "not-supported",
        f"{entry.type} {name or '(no fullUrl)'} not taken in: {reason}"[:1000],
        f"Bundle.entry[{entry.index}]",
        "warning",
    )


def about_patient(resource: dict[str, Any], patient_urls: set[str]) -> bool:
    subject = resource.get("subject") or resource.get("patient") or {}
    target = str(subject.get("reference") or "") if isinstance(subject, dict) else ""
    return bool(target) and (
        target in patient_urls
        or any(target.endswith("/" + u) for u in patient_urls if u.startswith("Patient/"))
    )


def measure_problem(resource: dict[str, Any], patient_urls: set[str]) -> str | None:
    """Why an Observation cannot become a measure before careplan is asked (None: ask it)."""
    if not about_patient(resource, patient_urls):
        return "it is not about the handoff's patient"
    if not any(c.get("system") == LOINC for c in resource.get("code", {}).get("coding", [])):
        return "careplan records measures coded in LOINC only"
    if not resource.get("effectiveDateTime"):
        return "careplan records measures with an effectiveDateTime"
    if not any(k.startswith("value") for k in resource) and not resource.get("component"):
        return "it carries no value"
    return None


def as_measure(
    resource: dict[str, Any],
    patient_ref: str,
    patient_urls: set[str],
    handoff_labels: list[dict[str, Any]] | None = None,
) -> str:
    """The Observation as careplan's RecordMeasure takes it: ours as the subject, references to
    anything else kept as a display only, its labels kept and the handoff's added (the labels the
    plan and the stay take: a vital sign from a Part 2 discharge is as labelled as the rest)."""
    copy: dict[str, Any] = json.loads(json.dumps(resource))
    for key in ("id", "text", "contained", "encounter", "hasMember", "derivedFrom", "focus"):
        copy.pop(key, None)
    meta = copy.pop("meta", {})
    security = labels.union(meta.get("security") or [], handoff_labels or [])
    if security:
        copy["meta"] = {"security": security}
    for reference in references(copy):
        target = reference["reference"]
        if target in patient_urls:
            reference["reference"] = patient_ref
        else:
            reference.pop("reference")
            reference.setdefault("display", f"{target.split('/')[0][:40]} in the handoff bundle")
    copy["subject"] = {"reference": patient_ref}
    return json.dumps(copy)


def discharging(
    entries: list[Entry], composition: dict[str, Any] | None
) -> tuple[Entry | None, Entry | None]:
    """The discharging practitioner (the Composition's author, else the first Practitioner) and
    organization (the Composition's custodian, else the first Organization)."""
    practitioner = organization = None
    if composition is not None:
        for author in composition.get("author", []):
            found = resolve(str(author.get("reference", "")), entries)
            if found is not None and found.type == "Practitioner":
                practitioner = found
                break
        custodian = composition.get("custodian", {}).get("reference")
        if custodian:
            found = resolve(str(custodian), entries)
            organization = found if found is not None and found.type == "Organization" else None
    practitioner = practitioner or next((e for e in entries if e.type == "Practitioner"), None)
    organization = organization or next((e for e in entries if e.type == "Organization"), None)
    return practitioner, organization


def name_of(resource: dict[str, Any]) -> str:
    """A person's or an organization's name as one line."""
    if isinstance(resource.get("name"), str):
        return str(resource["name"])
    for name in resource.get("name", []):
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        joined = " ".join(p for p in parts if p)
        if joined:
            return joined
    return ""


def practitioner_json(resource: dict[str, Any]) -> str:
    """A sender's Practitioner as the registry takes it (no id, narrative or meta)."""
    kept = {k: v for k, v in resource.items() if k not in ("id", "text", "meta", "contained")}
    return json.dumps(kept)


def role_json(practitioner_id: str, organization: dict[str, Any]) -> str:
    """The discharging practitioner's role at the sending organization: the registry keeps
    organizations as what a practitioner's role names (no Organization resource of its own)."""
    reference: dict[str, Any] = {"display": name_of(organization)[:200] or "sending organization"}
    identifiers = [i for i in organization.get("identifier", []) if i.get("value")]
    if identifiers:
        reference["identifier"] = identifiers[0]
    return json.dumps(
        {
            "resourceType": "PractitionerRole",
            "active": True,
            "practitioner": {"reference": f"Practitioner/{practitioner_id}"},
            "organization": reference,
        }
    )


def _when(resource: dict[str, Any]) -> datetime:
    try:
        when = datetime.fromisoformat(str(resource.get("effectiveDateTime", "")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def latest_per_measure(observations: list[Entry]) -> tuple[list[Entry], dict[int, str]]:
    """The latest reading of each measure (by LOINC code; the later entry on a tie), and why
    each earlier one is not recorded: the program starts from where the patient left the
    hospital, and a week of nursing vitals stays in the sender's record (ADR 0030)."""
    latest: dict[str, Entry] = {}
    for entry in observations:
        code = next(
            str(c.get("code"))
            for c in entry.resource.get("code", {}).get("coding", [])
            if c.get("system") == LOINC
        )
        kept = latest.get(code)
        if kept is None or _when(entry.resource) >= _when(kept.resource):
            latest[code] = entry
    chosen = {e.index for e in latest.values()}
    reasons = {
        e.index: "an earlier reading of a measure the Bundle also carries later; the handoff "
        "records the latest reading of each measure (the series stays in the sender's record)"
        for e in observations
        if e.index not in chosen
    }
    return [e for e in observations if e.index in chosen], reasons
