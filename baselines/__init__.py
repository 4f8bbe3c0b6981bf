"""Baseline methods, one file each. `kdfd.registry.load_methods` imports every module of this package, and each
registers its method: adding a method is adding a file."""
