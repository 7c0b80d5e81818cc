"""The built-in methods, declared once as lazy ``"module:Class"`` targets.

:mod:`dreambench.methods.registry` registers these names without importing the modules, so listing the
names (an unknown-name message, ``--help``) imports no method; the first lookup of a name imports its
module. A built-in's recipes are declared beside it, in its own module.
"""

from __future__ import annotations

BUILTIN_METHODS: dict[str, str] = {
    "dreambooth": "dreambench.methods.dreambooth:DreamBooth",
    "dreambooth-lora": "dreambench.methods.lora:DreamBoothLoRA",
    "pretrained": "dreambench.methods.pretrained:Pretrained",
    "real": "dreambench.methods.real:RealImages",
    "textual-inversion": "dreambench.methods.textual_inversion:TextualInversion",
}
