"""Models of the scheduling app (built by a later stage of the platform)."""
