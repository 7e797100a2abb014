"""Reference templates: a body mesh with 16 anatomical parts, their adjacency graph, landmarks, units and axes."""
from bodydata.templates.landmarks import LANDMARK_NAMES, load_landmarks
from bodydata.templates.parts import PART_COLORS, PART_NAMES
from bodydata.templates.template import Template, build_template, load_template

__all__ = ["LANDMARK_NAMES", "PART_COLORS", "PART_NAMES", "Template", "build_template", "load_landmarks", "load_template"]
