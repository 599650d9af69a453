"""Services: ingest and query, written once over the storage port."""
