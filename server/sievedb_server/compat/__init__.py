"""Model compatibility: checks, report, simplex spec and query adapters (pure numpy, no grpc)."""

from sievedb_server.compat.adapters import Adapter, fit_adapter, fit_verified_adapter
from sievedb_server.compat.checks import (
    DEFAULT_THRESHOLDS,
    CompatReport,
    GenerationReport,
    Thresholds,
    check_compatibility,
    pairwise_means_hold,
    procrustes,
)
from sievedb_server.compat.simplex import SimplexSpec, dsimplex

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Adapter",
    "CompatReport",
    "GenerationReport",
    "SimplexSpec",
    "Thresholds",
    "check_compatibility",
    "dsimplex",
    "fit_adapter",
    "fit_verified_adapter",
    "pairwise_means_hold",
    "procrustes",
]
