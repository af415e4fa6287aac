"""ComputationFrame: declarative queries over stored calls."""

from memostore.cf.building import looks_like_hid
from memostore.cf.frame import ComputationFrame

__all__ = ["ComputationFrame", "looks_like_hid"]
