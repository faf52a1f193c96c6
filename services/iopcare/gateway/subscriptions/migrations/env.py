from iopcare.gateway.subscriptions.store import metadata
from iopcare.kit import migrations

migrations.run(metadata)
