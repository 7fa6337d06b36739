"""A stand-in for a third-party Django app: it knows the Tasks API, not the job platform."""
