"""Subcommands of the ``csnln`` command line (see :mod:`csnln.cli`).

Each module defines ``add_arguments(parser)`` and ``run(args) -> int`` (the exit code) and
has a Python API equivalent elsewhere in the package.
"""


def exists_error(exc: FileExistsError) -> str:
    """The one-line error of a write refused because the file exists, in command-line terms."""
    return "error: " + str(exc).replace("(pass overwrite", "(pass --overwrite")
