"""The paired training set: pose/neutral pairing, splits, per-mesh features, memory-mapped arrays, torch Dataset."""
