"""`python -m pik` is the `pik` command."""

from pik.cli.main import main

main()
