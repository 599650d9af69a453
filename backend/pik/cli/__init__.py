"""The `pik` command line."""
