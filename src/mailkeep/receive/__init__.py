"""Receiving mail that is sent to mailkeep (the SMTP journal receiver)."""
