"""dreambench: the DreamBooth evaluation protocol, end to end.

Data flows in one line (see docs/architecture.md):
protocol -> plan -> train -> generate -> score -> per_image table -> tables / report / study.
"""

__version__ = "0.1.0"

from .lazy import lazy_exports  # after __version__, which modules import from here

# The library entry point (dreambench.evaluate): resolved on first use, so `import dreambench` stays light.
__getattr__ = lazy_exports(__name__, {"evaluate": "evaluation", "plan_run": "evaluation", "RunRequest": "evaluation",
                                      "Evaluation": "evaluation", "PlannedRun": "evaluation"})
