"""The release rule, in one place: what of a resource may leave the program for this caller.

Every caller of the gateway is outside the program (docs/gateway.md), so every resource the
gateway answers with is a disclosure. One function decides for all of them,
`ReleaseRule.release(caller, items)`; `disclosure.py` holds the label vocabulary and the consent
decision it applies (notes' `may_disclose`):
- no restricted label (ETH, SUD, OPIOIDUD, ALCUD, PSY, PSYTHPN, HIV, SDV, confidentiality R or V,
  on the resource or anything it contains): released as stored;
- labelled, to a disclosing identity (an EHR's backend token) named by an active Consent of the
  patient: the copy with NORDSCLCD and the redisclosure notice (42 CFR 2.31, 2.32), except V,
  PSYTHPN, HIV and SDV, which never leave (45 CFR 164.508(a)(2); program policy);
- a clinical note notes itself released (`DiscloseNote`, the same rule applied by notes);
- anything else is withheld: a read is 403 `suppressed`, a Bundle counts it in an
  OperationOutcome entry.

The guarantee is structural, not a convention: a response body can only carry a resource that
came out of `release()` in the same request. `release()` records what it let out in the request's
`Ledger`; `emit()` turns a released item into response content (and refuses anything else); and
`check_egress()`, called by `Gateway.handle` on every response before it is written, walks the
body (Bundles and Parameters included, nested batch responses too) and refuses to send any
resource the ledger does not know. Only what the gateway writes itself is exempt: containers
(Bundle, Parameters), OperationOutcome, CapabilityStatement, OperationDefinition, and content the
gateway composes from released resources (`admit_composed`, the $handoff-summary Composition).
A path that forgets the rule fails closed with an internal error, never with a disclosure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from iopcare.gateway import disclosure, uscore
from iopcare.gateway.errors import FhirHttpError, Problem
from iopcare.gateway.resources.notes import DISCLOSING_ROLES
from iopcare.kit import privacy

if TYPE_CHECKING:
    from iopcare.gateway.client import Caller
    from iopcare.gateway.resources.base import Found

log = logging.getLogger(__name__)

#: Resources the gateway writes itself: they hold other resources (checked one by one) or no
#: patient data of their own.
CONTAINERS = frozenset({"Bundle", "Parameters"})
GATEWAY_MADE = frozenset({"OperationOutcome", "CapabilityStatement", "OperationDefinition"})


class UnreleasedContent(Exception):
    """A response tried to carry a resource that did not pass the release rule (a gateway bug;
    the response is refused instead of sent)."""


@dataclass
class Ledger:
    """What the release rule let out during one request. Objects are held (not only their ids)
    so that an id cannot be reused by another object while the request runs."""

    released: dict[int, Any] = field(default_factory=dict)

    def admit(self, value: Any) -> Any:
        self.released[id(value)] = value
        return value

    def knows(self, value: Any) -> bool:
        return self.released.get(id(value)) is value


_ledger: ContextVar[Ledger | None] = ContextVar("iopcare_release_ledger", default=None)


@contextmanager
def request_scope() -> Iterator[Ledger]:
    """One ledger per request (`Gateway.handle`); batch entries share their Bundle's."""
    ledger = Ledger()
    token = _ledger.set(ledger)
    try:
        yield ledger
    finally:
        _ledger.reset(token)


def _current() -> Ledger:
    ledger = _ledger.get()
    if ledger is None:
        # Outside a request (a unit test calling a helper): a ledger of its own, so the rule
        # still applies and emit() still refuses what it did not release.
        ledger = Ledger()
        _ledger.set(ledger)
    return ledger


ConsentSource = Callable[["Caller", str], list[privacy.ConsentFacts]]


class ReleaseRule:
    """The one rule every outgoing resource passes through (see the module docstring)."""

    def __init__(self, consents: ConsentSource) -> None:
        self._consents = consents

    def release(self, caller: Caller, items: list[Found]) -> tuple[list[Found], int]:
        """The items that may leave for `caller` (a labelled one as released under the
        patient's consent), and how many were withheld."""
        ledger = _current()
        kept: list[Found] = []
        consents: dict[str, list[privacy.ConsentFacts]] = {}
        now = datetime.now(UTC)
        for item in items:
            copy = self._decide(caller, item, consents, now)
            if copy is not None:
                # What leaves says which US Core profile it follows (uscore.py, ADR 0031).
                text, parsed = uscore.conformed(copy.json)
                copy = replace(copy, json=text, _parsed=[parsed] if parsed is not None else [])
                kept.append(ledger.admit(copy))
        return kept, len(items) - len(kept)

    def _decide(
        self,
        caller: Caller,
        item: Found,
        consents: dict[str, list[privacy.ConsentFacts]],
        now: datetime,
    ) -> Found | None:
        if item.released:
            # notes' DiscloseNote / SearchNotes with the caller as recipient: notes applied the
            # same may_disclose rule to the note with the patient's consents in its own
            # transaction, and added NORDSCLCD and the notice (42 CFR 2.32).
            return replace(item, _parsed=[])
        if (
            not disclosure.may_carry_labels(item.json)
            or disclosure.withheld_reason(item.resource) is None
        ):
            return replace(item, _parsed=[])
        # DISCLOSING_ROLES: identities whose reads are disclosures to an outside organisation,
        # so a patient's Consent can release labelled content to them (42 CFR 2.31).
        if caller.principal.role not in DISCLOSING_ROLES or not item.patient_id:
            # A clinician's token through the gateway is still outside the program: its consent
            # is not the question, so labelled content stays in (docs/gateway.md).
            return None
        if item.patient_id not in consents:
            consents[item.patient_id] = self._consents(caller, item.patient_id)
        copy = disclosure.release(
            item.json, caller.principal.subject, consents[item.patient_id], now
        )
        if copy is None:
            return None
        return replace(item, json=copy, released=True, _parsed=[])

    def require(self, caller: Caller, item: Found) -> Found:
        """The item as released, or 403 `suppressed` (a read, vread, a conditional create that
        matched it, a registration that found it, and a write to it: 42 CFR 2.13(a), a record
        is not disclosed, nor altered by someone it may not be disclosed to)."""
        kept, _ = self.release(caller, [item])
        if not kept:
            raise FhirHttpError(
                403,
                Problem("suppressed", disclosure.withheld_reason(item.resource) or "withheld"),
                reason="WITHHELD",
            )
        return kept[0]


def emit(item: Found, shaped: dict[str, Any] | None = None) -> Any:
    """The response content for a released item: its JSON text as stored, its parsed resource,
    or `shaped` (a `_summary`/`_elements` view of it). Refuses an item release() did not let out
    in this request."""
    ledger = _current()
    if not ledger.knows(item):
        raise UnreleasedContent(f"{item.resource.get('resourceType')} did not pass the rule")
    if shaped is not None:
        return ledger.admit(shaped)
    return ledger.admit(item.json)


def emit_resource(item: Found) -> dict[str, Any]:
    """The parsed resource of a released item (for a Bundle entry)."""
    ledger = _current()
    if not ledger.knows(item):
        raise UnreleasedContent(f"{item.resource.get('resourceType')} did not pass the rule")
    resource = item.resource
    ledger.admit(resource)
    return resource


def carry(source: Any, derived: Any) -> Any:
    """`derived` (e.g. a released JSON text parsed for a batch-response entry) is released
    when `source` was."""
    ledger = _current()
    if ledger.knows(source):
        ledger.admit(derived)
    return derived


def admit_composed(resource: dict[str, Any]) -> dict[str, Any]:
    """Content the gateway composed only from resources the rule released in this request (the
    $handoff-summary Composition, a medication copied out of a released plan)."""
    _current().admit(resource)
    return resource


def check_egress(body: Any) -> None:
    """Raises UnreleasedContent if `body` carries a resource the rule did not let out."""
    ledger = _current()
    if body is None or ledger.knows(body):
        return
    if isinstance(body, str | bytes):
        import json

        body = json.loads(body)
    _check(body, ledger, "body")


def _check(resource: Any, ledger: Ledger, where: str) -> None:
    if ledger.knows(resource):
        return
    if not isinstance(resource, dict):
        raise UnreleasedContent(f"{where} is not a resource")
    kind = resource.get("resourceType")
    if kind in GATEWAY_MADE:
        return
    if kind == "Bundle":
        for index, entry in enumerate(resource.get("entry", [])):
            if "resource" in entry:
                _check(entry["resource"], ledger, f"{where}.entry[{index}].resource")
            outcome = entry.get("response", {}).get("outcome")
            if outcome is not None:
                _check(outcome, ledger, f"{where}.entry[{index}].response.outcome")
        return
    if kind == "Parameters":
        for index, parameter in enumerate(resource.get("parameter", [])):
            _check_parameter(parameter, ledger, f"{where}.parameter[{index}]")
        return
    raise UnreleasedContent(f"{where}: a {kind} that did not pass the release rule")


def _check_parameter(parameter: dict[str, Any], ledger: Ledger, where: str) -> None:
    if "resource" in parameter:
        _check(parameter["resource"], ledger, f"{where}.resource")
    for index, part in enumerate(parameter.get("part", [])):
        _check_parameter(part, ledger, f"{where}.part[{index}]")
