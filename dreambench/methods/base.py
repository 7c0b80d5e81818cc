"""The method interface and registry under their old import path (``dreambench.methods.base``).

The interface lives in :mod:`.interface`, the registry in :mod:`.registry`; this module re-exports both so
that code and plug-ins importing ``dreambench.methods.base`` keep working. New code imports from those.
"""

from __future__ import annotations

from .interface import (
    GenerationRequest,
    Method,
    MethodConfig,
    SubjectData,
    config_fields,
    field,
    make_config,
)
from .registry import (
    BUILTIN_PROVIDER,
    ENTRY_POINT_GROUP,
    PluginWarning,
    get_method,
    list_methods,
    method_distribution,
    method_provider,
    register_method,
)

__all__ = [
    "BUILTIN_PROVIDER",
    "ENTRY_POINT_GROUP",
    "GenerationRequest",
    "Method",
    "MethodConfig",
    "PluginWarning",
    "SubjectData",
    "config_fields",
    "field",
    "get_method",
    "list_methods",
    "make_config",
    "method_distribution",
    "method_provider",
    "register_method",
]
