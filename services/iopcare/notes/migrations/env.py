from iopcare.kit import migrations
from iopcare.notes.store import metadata

migrations.run(metadata)
