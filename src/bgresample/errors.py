"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad argument, missing file, wrong checkpoint).

    The message says what was wrong, what was expected and how to fix it.
    """


#: How many characters of a value a message quotes (:func:`shorten`).
QUOTE_LIMIT = 80


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, with its full length, for quoting a value in a
    message (a 50 MB config value must not become a 50 MB error)."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 3]}... ({len(text):,} characters)"
