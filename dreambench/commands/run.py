"""`dreambench run` commands."""

COMMANDS: list = []
