"""`dreambench tables` commands."""

COMMANDS: list = []
