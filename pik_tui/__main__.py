"""`python -m pik_tui`: the same as `pik-tui`."""

import sys

from pik_tui.app import main

sys.exit(main())
