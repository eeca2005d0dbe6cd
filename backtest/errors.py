"""The one exception type for mistakes a user can fix (bad input, bad config, bad data).

The CLI prints such errors as a single line and exits non-zero; anything else is a bug and keeps
its traceback.
"""


class UserError(ValueError):
    """A problem with the user's input; the message names the file/row/key/value and what was expected."""
