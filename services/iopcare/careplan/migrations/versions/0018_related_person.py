"""Family members and other related people of a patient (FHIR RelatedPerson)."""

from iopcare.kit.migration_steps import versioned_tables_v1

revision = "0018"
down_revision = "0017"

upgrade, downgrade = versioned_tables_v1("related_person")
