"""Models of the notifications app (built by a later stage of the platform)."""
