# Doorbell messages queued before the engine moved to queues.engine name "queues.runner.drain":
# this path keeps them working for one release. Remove it in the release after.
from queues.engine.runner import drain  # noqa: F401
