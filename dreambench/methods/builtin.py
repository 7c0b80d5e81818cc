"""Imports the built-in methods so that they register themselves."""

from . import dreambooth, lora, pretrained, real, textual_inversion  # noqa: F401
