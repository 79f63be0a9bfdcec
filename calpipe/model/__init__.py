"""The resource model: learn peak memory and wall time per product family from the training
database, store the models there (checksummed, code-free), predict for new products.

``calpipe model train | predict | status | export``; from Python, :func:`reservation_mb`
gives a batch task its memory reservation. See docs/model.md.
"""

from .predict import Prediction, predict_products, reservation_mb
from .store import ModelError

__all__ = ["ModelError", "Prediction", "predict_products", "reservation_mb"]
