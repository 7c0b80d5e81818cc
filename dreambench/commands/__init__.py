"""Click command groups; each module exposes ``COMMANDS`` (see :mod:`dreambench.cli`)."""
