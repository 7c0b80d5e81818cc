"""`dreambench study` commands."""

COMMANDS: list = []
