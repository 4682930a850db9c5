"""`python -m advlegit ...` is the `advlegit` command."""
from advlegit.cli import main

main()
