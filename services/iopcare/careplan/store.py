"""The care plan service's tables and the queries on them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

from iopcare.careplan import codes
from iopcare.kit import topics
from iopcare.kit.db import as_utc
from iopcare.kit.service_schema import ServiceSchema
from iopcare.kit.versioned import Stored, VersionedTables

SCHEMA = ServiceSchema(codes.SOURCE, topics.CAREPLAN)
metadata, JOURNAL = SCHEMA.metadata, SCHEMA.journal
outbox, inbox, request_log, audit_log = SCHEMA.kit_tables

plans = VersionedTables(metadata, "care_plan")
care_plan, care_plan_history = plans.current, plans.history

teams = VersionedTables(metadata, "care_team")

#: Who is on which patient's team, from the current version of every CareTeam: the access rule
#: (a clinician sees a patient while on an active team of theirs) is one indexed lookup here.
care_team_member = SCHEMA.care_team_member

goals = VersionedTables(metadata, "goal")
#: The dietitian's individual nutrition plans (FHIR NutritionOrder), versioned.
nutrition_orders = VersionedTables(metadata, "nutrition_order")
episodes = VersionedTables(metadata, "episode_of_care")

#: Recorded outcome measures (Observations), queried by patient and LOINC code for trends.
observation = Table(
    "observation",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("code", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("value", Float, nullable=True),
    Column("effective", DateTime(timezone=True), nullable=False),
    Column("resource", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
Index("ix_observation_trend", observation.c.patient_id, observation.c.code, observation.c.effective)

#: What careplan knows of the patient's sessions, projected from scheduling's events, so the
#: holistic view (GetPatientPlan) answers without calling scheduling.
session_view = Table(
    "session_view",
    metadata,
    Column("appointment_id", String(64), primary_key=True),
    #: A group session has a row per patient, each with that patient's attendance.
    Column("patient_id", String(64), primary_key=True),
    Column("care_plan_id", String(64), nullable=True),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=False),
    Column("status", String(32), nullable=False),
    Column("description", String(200), nullable=True),
    Column("version", Integer, nullable=False),
)
Index("ix_session_view_patient_start", session_view.c.patient_id, session_view.c.start)

#: The latest team messages (title and author only), projected from notes' events.
note_view = Table(
    "note_view",
    metadata,
    Column("communication_id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("sender", String(200), nullable=False),
    Column("title", String(200), nullable=False),
    Column("category", String(32), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
)
Index("ix_note_view_patient_sent", note_view.c.patient_id, note_view.c.sent_at)

#: Signed clinical notes (projected from notes' note.signed events): the reference, type, author
#: and labels only; the text stays in notes. The view shows a note's type and author to those the
#: notes privacy rules let read it.
document_view = Table(
    "document_view",
    metadata,
    Column("document_id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("author", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("title", String(200), nullable=False),
    Column("confidentiality", String(1), nullable=False),
    #: Sensitivity labels (PSYTHPN, PSY, ETH, SUD), space separated.
    Column("sensitivity", String(100), nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
)
Index("ix_document_view_patient_signed", document_view.c.patient_id, document_view.c.signed_at)

#: Plan reviews: when, the outcome, what was decided and each discipline's attestation (JSON).
plan_review = Table(
    "plan_review",
    metadata,
    Column("plan_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("reviewed_on", Date, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("summary", Text, nullable=False),
    Column("attestations", Text, nullable=False),
    Column("recorded_by", String(200), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

#: The registry: patients (their own id as patient_id), practitioners and their roles.
patients = VersionedTables(metadata, "patient")
practitioners = VersionedTables(metadata, "practitioner")
practitioner_roles = VersionedTables(metadata, "practitioner_role")
#: Family members and other related people of a patient (FHIR RelatedPerson), keyed by patient.
related_persons = VersionedTables(metadata, "related_person")
#: Utilization review (docs/decisions/0028-utilization-review.md): payer coverage (FHIR Coverage,
#: keyed by the beneficiary) and authorizations of a stay (FHIR ClaimResponse, preauthorization).
coverages = VersionedTables(metadata, "coverage")
authorizations = VersionedTables(metadata, "claim_response")

#: The medication list (issue 12, part 1): what the patient takes, as the prescribers keep it.
medication_statements = VersionedTables(metadata, "medication_statement")
medication_requests = VersionedTables(metadata, "medication_request")

#: Each inbound medication of an intake to reconcile, and the prescriber's decision on it.
medication_reconciliation = Table(
    "medication_reconciliation",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("care_plan_id", String(64), nullable=False),
    #: The inbound medication's local id in the plan (`#medi2`).
    Column("source", String(64), nullable=False),
    #: The inbound MedicationStatement or MedicationRequest as received (its labels kept).
    Column("resource", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("decision", String(16), nullable=True),
    Column("decided_by", String(200), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=True),
    #: The MedicationStatement the decision wrote on the list.
    Column("medication_id", String(64), nullable=True),
    #: When the team task for the item overdue was raised (once).
    Column("task_raised_at", DateTime(timezone=True), nullable=True),
)

#: The tables of each versioned FHIR type.
VERSIONED = {
    "CarePlan": plans,
    "CareTeam": teams,
    "Goal": goals,
    "EpisodeOfCare": episodes,
    "Patient": patients,
    "Practitioner": practitioners,
    "PractitionerRole": practitioner_roles,
    "RelatedPerson": related_persons,
    "NutritionOrder": nutrition_orders,
    "MedicationStatement": medication_statements,
    "MedicationRequest": medication_requests,
    "Coverage": coverages,
    "ClaimResponse": authorizations,
}

#: Every identifier (e.g. a hospital MRN) of a registered patient, unique across patients: a
#: second identifier for the same person links to the same patient instead of making a twin.
patient_identifier = Table(
    "patient_identifier",
    metadata,
    Column("system", String(200), primary_key=True),
    Column("value", String(200), primary_key=True),
    Column("patient_id", String(64), nullable=False, index=True),
)

#: Which review dates have been announced: one review-due event per plan and due date.
review_notice = Table(
    "review_notice",
    metadata,
    Column("plan_id", String(64), primary_key=True),
    Column("due", Date, primary_key=True),
    Column("noticed_at", DateTime(timezone=True), nullable=False),
)

#: Each alert raised for an authorization (domain.utilization.ALERTS), once: the team task
#: (FHIR Task) its event carried.
authorization_alert = Table(
    "authorization_alert",
    metadata,
    Column("authorization_id", String(64), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("task", Text, nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=False),
)


def values_over_time(conn: Connection, patient_id: str, code: str) -> list[float]:
    """A patient's values of one measure, oldest first (by when they were measured)."""
    o = observation.c
    rows = conn.execute(
        select(o.value)
        .where((o.patient_id == patient_id) & (o.code == code) & (o.value.is_not(None)))
        .where(o.status != "entered-in-error")
        .order_by(o.effective, o.recorded_at)
    ).scalars()
    return [float(v) for v in rows]


def load_observation(conn: Connection, observation_id: str) -> tuple[str, datetime] | None:
    row = conn.execute(
        select(observation.c.resource, observation.c.recorded_at).where(
            observation.c.id == observation_id
        )
    ).first()
    return (row.resource, row.recorded_at) if row is not None else None


def patient_page(
    conn: Connection, tables: VersionedTables, patient_id: str, limit: int, after: str | None
) -> list[Stored]:
    """Up to `limit` of the patient's resources, oldest first (when created, then id), after the
    one with id `after` (the keyset of a page token; an id not of this patient gives nothing)."""
    c = tables.current.c
    query = select(tables.current).where(c.patient_id == patient_id)
    if after is not None:
        # An alias: the same table unaliased would be correlated with the outer query's rows.
        m = tables.current.alias("mark").c
        mark = (
            select(m.created_at)
            .where((m.id == after) & (m.patient_id == patient_id))
            .scalar_subquery()
        )
        query = query.where((c.created_at > mark) | ((c.created_at == mark) & (c.id > after)))
    rows = conn.execute(query.order_by(c.created_at, c.id).limit(limit)).all()
    return [
        Stored(r.id, r.version, r.patient_id, r.status, as_utc(r.updated_at), r.resource)
        for r in rows
    ]


def measures_page(
    conn: Connection, patient_id: str, code: str | None, limit: int, after: str | None
) -> list[tuple[str, str]]:
    """Up to `limit` of the patient's measures (id, FHIR JSON), oldest first (when measured, when
    recorded, then id), after the one with id `after`."""
    o = observation.c
    query = select(o.id, o.resource).where(o.patient_id == patient_id)
    if code:
        query = query.where(o.code == code)
    if after is not None:
        query = query.where(_after_measure(patient_id, after))
    rows = conn.execute(query.order_by(o.effective, o.recorded_at, o.id).limit(limit)).all()
    return [(str(r.id), str(r.resource)) for r in rows]


def _after_measure(patient_id: str, after: str) -> ColumnElement[bool]:
    """Rows after measure `after` in (effective, recorded_at, id) order, without row values
    (portable across SQLite and PostgreSQL)."""
    o, m = observation.c, observation.alias("mark").c  # alias: not correlated with the outer rows
    mine = (m.id == after) & (m.patient_id == patient_id)
    effective = select(m.effective).where(mine).scalar_subquery()
    recorded = select(m.recorded_at).where(mine).scalar_subquery()
    return (o.effective > effective) | (
        (o.effective == effective)
        & ((o.recorded_at > recorded) | ((o.recorded_at == recorded) & (o.id > after)))
    )
