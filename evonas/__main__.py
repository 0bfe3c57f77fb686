"""`python -m evonas ...` runs the command line (the same as the `evonas` script)."""

from evonas.cli.main import main

main()
