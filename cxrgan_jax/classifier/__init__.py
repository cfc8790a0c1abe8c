"""A small 3-class chest X-ray CNN: a sanity check of the data and the 'cxr' feature net.

Two jobs:

1. Utility check of the data (and later of synthetic data): how well does a
   classifier separate normal / bacterial / viral pneumonia, reported as in
   Kermany et al. (2018, Cell 172:1122) - accuracy, per-class and
   pneumonia-vs-normal sensitivity and specificity.
2. A domain-specific feature space for Fréchet distance, 1-NN and friends
   (`fd_cxr`): ImageNet Inception features are known to be a poor fit for
   grayscale radiographs, and its weights are not always available.

model.py (the network), train.py (training, metrics), inference.py (a trained
classifier from its workdir; the 'cxr' extractor); `python -m
cxrgan_jax.classifier` is the binary (__main__.py).

Measured on the shared data (3562 train / 401 validation / 488 test images,
patient-disjoint), 64 px, 1500 steps of batch 32 (~100 s of training on 2 CPU
cores): test accuracy 0.77 (balanced 0.78); pneumonia vs normal accuracy
0.96, sensitivity 0.955, specificity 0.978. Bacterial vs viral is the hard
part (viral sensitivity 0.62), as in Kermany et al. 2018.
"""
