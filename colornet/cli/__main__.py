"""`python -m colornet.cli`, as the `colornet` command."""

from colornet.cli import launch

launch()
