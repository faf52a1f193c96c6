"""What scheduling knows of patients' ages and family members, projected from careplan's patient
and related-person events: minors' sessions are proposed after school, and a family session
names only the patient's own family."""

from __future__ import annotations

from datetime import date

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    Integer,
    String,
    Table,
    insert,
    select,
    update,
)

from iopcare.scheduling.store.tables import metadata

#: A registered patient's birth date (NULL: not given), from careplan's patient events.
patient_profile = Table(
    "patient_profile",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("birth_date", Date, nullable=True),
    Column("version", Integer, nullable=False),
)

#: Each patient's RelatedPersons (family members, guardians, school contacts), from careplan.
related_person_view = Table(
    "related_person_view",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("active", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
)


def save_patient_profile(
    conn: Connection, patient_id: str, birth: date | None, version: int
) -> None:
    """Keeps the newest version's birth date (a late copy of an older version changes nothing)."""
    p = patient_profile.c
    known = conn.execute(select(p.version).where(p.patient_id == patient_id)).scalar()
    if known is None:
        conn.execute(
            insert(patient_profile).values(patient_id=patient_id, birth_date=birth, version=version)
        )
    elif known < version:
        conn.execute(
            update(patient_profile)
            .where(p.patient_id == patient_id)
            .values(birth_date=birth, version=version)
        )


def birth_date(conn: Connection, patient_id: str) -> date | None:
    p = patient_profile.c
    found = conn.execute(select(p.birth_date).where(p.patient_id == patient_id)).scalar()
    return found if isinstance(found, date) else None


def save_related_person(
    conn: Connection, item_id: str, patient_id: str, active: bool, version: int
) -> None:
    r = related_person_view.c
    known = conn.execute(select(r.version).where(r.id == item_id)).scalar()
    values = {"patient_id": patient_id, "active": active, "version": version}
    if known is None:
        conn.execute(insert(related_person_view).values(id=item_id, **values))
    elif known < version:
        conn.execute(update(related_person_view).where(r.id == item_id).values(**values))


def family_of(conn: Connection, patient_id: str) -> set[str]:
    """The ids of the patient's active RelatedPersons."""
    r = related_person_view.c
    rows = conn.execute(
        select(r.id).where((r.patient_id == patient_id) & r.active.is_(True))
    ).scalars()
    return {str(ident) for ident in rows}
