"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad argument, missing file, wrong checkpoint).

    The message says what was wrong, what was expected and how to fix it.
    """
