"""The one exception for mistakes a user can fix, raised anywhere in the library and reported by the
commands (``deepfill.utils.cli.run``) as one line."""


class UserError(Exception):
    """Something the user can fix (a missing file, a corrupt image, a wrong checkpoint).

    Entry points report it as ``error: <message>`` and exit with code 2 — never a traceback.
    """
