"""Models of the devices app (built by a later stage of the platform)."""
