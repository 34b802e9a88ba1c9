"""Subcommands of the ``csnln`` command line (see :mod:`csnln.cli`).

Each module defines ``add_arguments(parser)`` and ``run(args) -> int`` (the exit code) and
has a Python API equivalent elsewhere in the package.
"""
