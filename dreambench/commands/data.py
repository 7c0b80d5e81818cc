"""`dreambench data` commands."""

COMMANDS: list = []
