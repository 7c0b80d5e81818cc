"""dreambench: the DreamBooth evaluation protocol, end to end.

Data flows in one line (see docs/architecture.md):
protocol -> plan -> train -> generate -> score -> per_image table -> tables / report / study.
"""

__version__ = "0.1.0"
