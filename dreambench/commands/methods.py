"""`dreambench methods` commands."""

COMMANDS: list = []
