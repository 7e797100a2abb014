"""Manifests: the one place that defines the CSV rows passed between stages, their columns and status words."""
