"""Evaluation metrics for generated chest X-rays.

Submodules (import them directly; this package imports nothing so that NumPy
-only metrics do not pay for JAX start-up):

- `inception`, `inception_weights`: pytorch-fid's FID InceptionV3 in Flax and
  its torch-free weight loader.
- `features`: the `FeatureExtractor` interface and registry
  ('inception', 'pixels', ...).
- `frechet`: feature statistics and the Fréchet distance (FID).
- `scores`: Inception Score and KID.
"""
