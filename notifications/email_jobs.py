"""Email handlers (send-email, send-batch-email, send-scheduled-email)."""
