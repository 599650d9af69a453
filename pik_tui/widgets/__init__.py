"""The panes and bars of the main screen."""
