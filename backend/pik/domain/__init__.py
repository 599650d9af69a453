"""The pure domain: envelopes, validation, ids, time, windows. No I/O lives here."""
