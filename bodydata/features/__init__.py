"""ACAP deformation features (per vertex and per part), their scaling, and ACAP -> mesh reconstruction.

Modules: ``deformation`` (per-vertex fit, Eq. 1), ``polar`` (polar decomposition, rotation log/exp),
``consistency`` / ``consistency_exact`` (axis signs and integer turns), ``acap`` (the extractor, f layout),
``coarse`` (part features g, Eq. 2-4), ``scaling`` ([-0.95, 0.95] per dimension), ``reconstruct``
(Eq. 5-6, torch, prefactored), ``compat`` (the ACAP authors' C++ conventions and files).
"""
from bodydata.features.acap import FEATURE_LAYOUT, AcapExtractor, AcapResult, acap_features
from bodydata.features.scaling import FeatureScaler

__all__ = ["AcapExtractor", "AcapResult", "acap_features", "FEATURE_LAYOUT", "FeatureScaler"]
