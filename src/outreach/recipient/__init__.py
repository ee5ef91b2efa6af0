"""Recipient lists and imports, suppressions, verification, enrichment and the directory."""
