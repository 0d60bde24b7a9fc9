"""The exception a user can cause; the CLI prints it as one line."""


class ColornetError(Exception):
    """A problem with the user's input (a path, a file, an argument), not a bug."""
