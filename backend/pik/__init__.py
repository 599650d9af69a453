"""Pipeline Investigation Kit: capture events once, keep them immutably, investigate them."""

__version__ = "0.1.0"
