"""The body embedding models (paper §5): the disentangled hierarchical network and its baselines, and loading a run.

``bodydata.model.load(RUN)`` gives a :class:`~bodydata.model.embedding.BodyEmbedding` with ``encode``, ``decode`` and
``vertices``, like the parametric body models researchers already use.
"""
from __future__ import annotations

from bodydata.model.embedding import BodyEmbedding, load
from bodydata.model.registry import architecture_names, get_architecture

__all__ = ["BodyEmbedding", "load", "architecture_names", "get_architecture"]
