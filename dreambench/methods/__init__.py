"""Personalization methods behind one interface (:mod:`.interface`), named in one registry (:mod:`.registry`)."""

from .interface import GenerationRequest, Method, MethodConfig, SubjectData
from .registry import get_method, list_methods, register_method

__all__ = ["GenerationRequest", "Method", "MethodConfig", "SubjectData", "get_method", "list_methods",
           "register_method"]
