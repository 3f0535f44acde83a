"""The one exception type for mistakes a user can make: the CLI prints it as one line."""


class UserError(Exception):
    """A problem with the user's input, files or options, explained in one line."""
