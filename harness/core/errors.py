"""The one error type a user sees as a clear line and exit code 2."""


class UsageError(Exception):
    """Bad input from the user: a malformed suite, an impossible config, a missing file.

    The CLI prints `error: <message>` and exits with code 2, never a traceback.
    """
