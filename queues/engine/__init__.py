"""The engine: code that runs only in ``runworker`` and ``runscheduler`` processes (claim,
run, record, recover, supervise). Web processes never import it; a test checks."""
