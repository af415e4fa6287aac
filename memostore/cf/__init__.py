"""ComputationFrame: declarative queries over stored calls."""

from memostore.cf.frame import ComputationFrame

__all__ = ["ComputationFrame"]
