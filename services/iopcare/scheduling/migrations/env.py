from iopcare.kit import migrations
from iopcare.scheduling.store import metadata

migrations.run(metadata)
