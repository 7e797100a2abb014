"""The anny body model fitted to a target (mesh or point cloud): differentiable rig, units, orientations, fit, un-posing."""
