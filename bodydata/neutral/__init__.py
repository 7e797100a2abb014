"""Neutral-pose construction: Procrustes alignment, ARAP deformation with segment-orientation constraints, per-subject driver."""
