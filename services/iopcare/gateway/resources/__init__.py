"""One handler per FHIR resource type, all behind the same interface (`base.ResourceHandler`)."""
