"""`pik-tui`: the terminal UI of the Pipeline Investigation Kit."""
