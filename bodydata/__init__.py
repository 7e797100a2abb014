"""bodydata: public 3D human body collections -> one shared-connectivity training set, and the
disentangled shape/pose body embedding of Jiang et al. (TVCG 2020)."""

__version__ = "0.1.0"
