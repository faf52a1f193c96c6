"""The dietitian's nutrition plans: NutritionOrder, versioned like plans (issue 13, part 2)."""

from iopcare.kit import migration_steps

revision = "0017"
down_revision = "0016"
upgrade, downgrade = migration_steps.versioned_tables_v1("nutrition_order")
