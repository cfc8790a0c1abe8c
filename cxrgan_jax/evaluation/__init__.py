"""Evaluation of generated X-rays, shared by `cxrgan_jax.evaluate` and the training loop.

extractors.py (feature spaces by name), folders.py (image folders),
real_cache.py (cached features of real splits), suite.py (one whole
evaluation), report.py (report.md), in_training.py (FD during training).
"""
