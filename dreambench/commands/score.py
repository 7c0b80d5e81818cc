"""`dreambench score` commands."""

COMMANDS: list = []
