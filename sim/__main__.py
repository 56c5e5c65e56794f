"""``python -m sim`` is the ``zoosim`` command."""

from sim.cli import main

main()
