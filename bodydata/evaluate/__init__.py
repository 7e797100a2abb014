"""The evaluation floor (paper §7-8): fitting codes to meshes (Eq. 15), reconstruction errors (Table 2),
disentanglement against the generator's ground truth, and the report that gathers them."""
