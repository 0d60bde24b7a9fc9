"""The exception a user can cause; the CLI prints it as one line."""

import re


class ColornetError(Exception):
    """A problem with the user's input (a path, a file, an argument), not a bug."""


def first_line(error):
    """One clean line from an exception: TF's op and function decorations removed."""
    message = getattr(error, "message", None) or str(error)
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
    lines = [line for line in message.strip().splitlines() if line.strip()]
    line = lines[0].strip() if lines else type(error).__name__
    return re.sub(r"\s*\[Op:[^\]]*\](\s*name:.*)?$", "", line)
