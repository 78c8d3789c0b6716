"""The one exception type the CLI turns into a one-line message."""


class KlonError(Exception):
    """A problem the user can fix (bad file, bad knob value, bad rate): the message says which."""
