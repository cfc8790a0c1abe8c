"""report.md: the inputs, every figure with a line on its meaning, the pictures."""

import pathlib
from typing import Any

from cxrgan_jax import files
from cxrgan_jax.evaluation import extractors

DESCRIPTIONS = {
  'fd': 'Fréchet distance between Gaussian fits of real and generated '
  'features (FID for inception); lower is better.',
  'kid': 'Kernel (cubic polynomial MMD²) distance; unbiased, lower is '
  'better, ~0 for one distribution.',
  'is': 'Inception Score over 10 splits; ImageNet classes, so only a rough '
  'sharpness/diversity signal for X-rays.',
  'one_nn_accuracy': 'Leave-one-out 1-NN real-vs-fake accuracy; 0.5 ideal, '
  '1 separable, <0.5 copies.',
  'one_nn_real_accuracy': 'Share of real images whose nearest neighbour is '
  'real (missed modes raise it).',
  'one_nn_fake_accuracy': 'Share of generated images whose nearest '
  'neighbour is generated (artefacts raise it).',
  'one_nn_p_value': 'Permutation p-value of the 1-NN accuracy under "same distribution".',
  'knn_same_set_fraction': "Mean share of each point's k nearest "
  'neighbours from its own set; ~0.5 ideal.',
  'precision': 'Share of generated images inside the real k=3 manifold (fidelity).',
  'recall': 'Share of real images inside the generated k=3 manifold (coverage).',
  'mean_pairwise_distance_fake': 'Mean feature distance between generated images.',
  'mean_pairwise_distance_real': 'Mean feature distance between real images.',
  'diversity_ratio': 'Generated / real mean pairwise distance; <1 means less diverse than real.',
  'memorization_copy_fraction': 'Share of generated images nearer to a '
  'training image than 95% of held-out real '
  'images are (chance 0.05).',
  'memorization_copy_fraction_p5': 'Same as memorization_copy_fraction '
  '(5th percentile rule; chance 0.05).',
  'memorization_copy_fraction_p1': 'Share nearer to train than 99% of '
  'held-out real images (chance 0.01).',
  'memorization_threshold_p5': 'Copy threshold: 5th percentile of test->train nearest distances.',
  'memorization_threshold_p1': 'Copy threshold: 1st percentile of test->train nearest distances.',
  'memorization_fake_nn_distance_median': 'Median generated->nearest training image distance.',
  'memorization_fake_nn_distance_min': 'Smallest generated->train distance (~0 = exact copy).',
  'memorization_test_nn_distance_median': 'Median held-out real->nearest training image distance.',
  'memorization_median_distance_ratio': 'Median generated->train over '
  'median test->train NN distance; '
  '<1 = closer than new patients.',
  'knn_same_set_fraction_real': "Mean share of a real point's k nearest "
  'neighbours that are real; ~0.5 ideal.',
  'knn_same_set_fraction_fake': "Mean share of a generated point's k "
  'nearest neighbours that are generated.',
  'num_fake': 'Generated images evaluated.',
  'num_real': 'Held-out real images.',
  'num_train': 'Training images searched by the memorisation audit.',
  'ms_ssim_fake': 'Mean MS-SSIM of random generated pairs; higher = less diverse.',
  'ms_ssim_real': 'Mean MS-SSIM of random real pairs (reference for ms_ssim_fake).',
}


def _describe(key: str) -> str:
  """One-line meaning of a metrics.json key (space suffix stripped)."""
  for space in extractors.NAMES:
    key = key.replace(f'_{space}', '') if key.endswith(f'_{space}') or f'_{space}_' in key else key
  std = key.endswith('_std')
  if key.endswith(('_mean', '_std')) and key.startswith(('kid', 'is')):
    key = key.rsplit('_', 1)[0]
  text = DESCRIPTIONS.get(key, '')
  return text + (' Std over subsets/splits.' if std and text else '')


def write_report(
  output_dir: pathlib.Path,
  metrics: dict[str, float],
  info: dict[str, Any],
  pictures: dict[str, str],
) -> pathlib.Path:
  """report.md: inputs, a table of every figure with its meaning, pictures."""
  lines = [
    '# Evaluation of generated chest X-rays',
    '',
    f'- generated: {info["fake_source"]} ({metrics["num_fake"]} images)',
    f'- real (held-out): {info["real_source"]} ({metrics["num_real"]} images)',
    f'- train (memorisation audit): {info.get("train_source") or "none"}',
    f'- resolution: {info["resolution"]}; feature spaces: {", ".join(info["features"])}',
    f'- MS-SSIM: {info["ms_ssim_num_scales"]} scales (standard 5 need '
    '>= 176 px; coarsest scales dropped, weights renormalised), '
    '11-px Gaussian window, sigma 1.5',
    '',
    '| metric | value | meaning |',
    '|---|---:|---|',
  ]
  for key in sorted(metrics):
    value = metrics[key]
    text = f'{value:.4g}' if isinstance(value, float) else str(value)
    lines.append(f'| `{key}` | {text} | {_describe(key)} |')
  lines += [
    '',
    'Copy rule: a generated image is a suspected copy when its '
    'nearest training image is closer than the 5th (p5) or 1st (p1) '
    "percentile of held-out real images' nearest-training distances "
    '(chance rates 0.05 / 0.01). 1-NN and precision/recall use equal-'
    'size random subsets of real and generated features.',
    '',
  ]
  for title, name in pictures.items():
    lines += [f'## {title}', '', f'![{title}]({name})', '']
  path = output_dir / 'report.md'
  files.write_text(path, '\n'.join(lines))
  return path
