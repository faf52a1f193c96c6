from iopcare.careplan.store import metadata
from iopcare.kit import migrations

migrations.run(metadata)
