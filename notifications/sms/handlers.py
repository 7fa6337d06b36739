"""SMS handlers (send-sms, send-batch-sms, send-verification-code)."""
