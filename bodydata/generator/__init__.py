"""The anny body generator: sampled phenotypes, key poses inside joint limits, ground truth in several connectivities."""
