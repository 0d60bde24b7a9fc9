"""The exception a user can cause (the CLI prints it as one line), and the warning
for an argument under an old name."""

import re
import warnings


class ColornetError(Exception):
    """A problem with the user's input (a path, a file, an argument), not a bug."""


def first_line(error):
    """One clean line from an exception: TF's op and function decorations removed."""
    message = getattr(error, "message", None) or str(error)
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
    lines = [line for line in message.strip().splitlines() if line.strip()]
    line = lines[0].strip() if lines else type(error).__name__
    return re.sub(r"\s*\[Op:[^\]]*\](\s*name:.*)?$", "", line)


def renamed(function, old, new, old_value, new_value, unset=None):
    """The value of keyword `new` of `function`, given under its old name `old`.

    `old_value` is what was passed as `old` (`unset` when it was not): it is taken,
    with a DeprecationWarning, unless `new` was given as well, which is a TypeError.
    """
    if old_value is unset:
        return new_value
    if new_value is not unset:
        raise TypeError(f"{function}() got both {new}= and its old name {old}=; give {new}= only")
    warnings.warn(f"{function}({old}=...) is deprecated: its name is now {new}=", DeprecationWarning, stacklevel=3)
    return old_value
