"""The ``evonas`` command line."""
