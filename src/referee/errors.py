"""Errors meant for the person at the keyboard: the CLI prints them as one line, with no traceback."""

from __future__ import annotations

from importlib.util import find_spec


class UserError(Exception):
    """A mistake the user can fix: says which file, row and field, what was expected, what to do."""


def require_extra(extra: str, *modules: str) -> None:
    """Stop with one line naming the `pip install` to run when an optional extra is not installed.

    >>> require_extra("serve", "json")   # installed: nothing to say
    >>> require_extra("align", "no_such_module_here")
    Traceback (most recent call last):
    ...
    referee.errors.UserError: this needs referee's 'align' extra (no_such_module_here is not installed): pip install 'referee[align]'
    """
    missing = [name for name in modules if find_spec(name) is None]
    if missing:
        raise UserError(f"this needs referee's {extra!r} extra ({', '.join(missing)} "
                        f"{'is' if len(missing) == 1 else 'are'} not installed): pip install 'referee[{extra}]'")
