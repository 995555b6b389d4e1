"""Errors meant for the person at the keyboard: the CLI prints them as one line, with no traceback."""


class UserError(Exception):
    """A mistake the user can fix: says which file, row and field, what was expected, what to do."""
