"""Personalization methods behind one interface (see :mod:`dreambench.methods.base`)."""

from .base import (
           GenerationRequest,
           Method,
           MethodConfig,
           SubjectData,
           get_method,
           list_methods,
           register_method,
)

__all__ = ["GenerationRequest", "Method", "MethodConfig", "SubjectData", "get_method", "list_methods",
           "register_method"]
