"""Pipeline Investigation Kit: capture events once, keep them immutably, investigate by entity and time."""

__version__ = "0.1.0"
