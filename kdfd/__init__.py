"""kdfd: the core of kdfd-bench.

The `Distiller` interface and method registry, the training engine, the GLUE task table and data loading, model
building, metrics, the VAE/AE bottleneck, the KDFD method and provenance. It imports neither `baselines` nor
`benchmarks`.
"""

__version__ = "0.1.0"
