"""Numbers, figures and report.md of the classifier-utility studies (see study.utility).

Drawn only from the records `utility.collect` reads back, so `--report_only`
rebuilds everything from the classifiers' metrics.json files and, for
gan_utility, the GAN runs' study_scores.jsonl.
"""

from collections.abc import Sequence
import math
import pathlib
from typing import Any

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

from cxrgan_jax import files  # noqa: E402
from cxrgan_jax.study import report as gan_report  # noqa: E402
from cxrgan_jax.study import results  # noqa: E402
from cxrgan_jax.study import stats  # noqa: E402
from cxrgan_jax.study import utility  # noqa: E402


def _interval(values: Sequence[float]) -> dict | None:
  values = [v for v in values if v is not None and math.isfinite(v)]
  return stats.mean_interval(values).__dict__ if values else None


def _by_seed(records: Sequence[dict], metric: str, **where) -> dict[int, float]:
  return {
    r['seed']: r['test'][metric]
    for r in records
    if 'test' in r and all(r.get(k) == v for k, v in where.items())
  }


def summarize_utility(records: Sequence[dict], margin: float) -> dict[str, Any]:
  """Per (class set, arm, fraction): intervals of every metric; TSTR/TRTR; mixed vs real."""
  cells: dict[str, dict[str, Any]] = {}
  for r in records:
    key = f'{r["classes"]}/{r["arm"]}' + ('' if r['fraction'] is None else f'/{r["fraction"]:g}')
    cell = cells.setdefault(
      key, {'classes': r['classes'], 'arm': r['arm'], 'fraction': r['fraction'], 'runs': 0}
    )
    cell['runs'] += 'test' in r
  for cell in cells.values():
    where = {k: cell[k] for k in ('classes', 'arm', 'fraction')}
    for metric in utility.METRICS:
      cell[metric] = _interval(list(_by_seed(records, metric, **where).values()))
  ratios, mixed = {}, {}
  for classes in dict.fromkeys(r['classes'] for r in records):
    for metric in ('accuracy', 'pneumonia_auc'):
      syn = _by_seed(records, metric, classes=classes, arm='synthetic')
      real = _by_seed(records, metric, classes=classes, arm='real', fraction=1.0)
      seeds = sorted(set(syn) & set(real))
      if seeds:
        ratios.setdefault(classes, {})[metric] = _interval([syn[s] / real[s] for s in seeds])
    fractions = sorted(
      {r['fraction'] for r in records if r['classes'] == classes and r['fraction']}
    )
    for fraction in fractions:
      a = _by_seed(records, 'accuracy', classes=classes, arm='mixed', fraction=fraction)
      c = _by_seed(records, 'accuracy', classes=classes, arm='real', fraction=fraction)
      if a and c:
        diff = stats.difference_interval(list(a.values()), list(c.values()))
        mixed.setdefault(classes, {})[f'{fraction:g}'] = {
          'difference': diff.__dict__,
          'verdict': stats.verdict(
            diff, float(np.mean(list(c.values()))), lower_is_better=False, margin=margin
          ),
        }
  return {'cells': cells, 'tstr_over_trtr': ratios, 'mixed_vs_real_accuracy': mixed}


def _gan_fd(gan_dir: str, metric: str) -> float | None:
  scores = results.read_run(pathlib.Path(gan_dir))['scores']
  values = [s[metric] for s in scores if s.get(metric) is not None]
  return float(values[-1]) if values else None


def _correlation(x: Sequence[float], y: Sequence[float]) -> dict[str, float] | None:
  if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
    return None
  pearson = scipy_stats.pearsonr(x, y)
  spearman = scipy_stats.spearmanr(x, y)
  return {
    'n': len(x),
    'pearson_r': float(pearson.statistic),
    'pearson_p': float(pearson.pvalue),
    'spearman_rho': float(spearman.statistic),
    'spearman_p': float(spearman.pvalue),
  }


def summarize_gan_utility(records: Sequence[dict], fd: str) -> dict[str, Any]:
  """Per GAN arm: TSTR figures and the GANs' mean final `fd`; their correlation over runs."""
  for r in records:
    fds = [_gan_fd(d, fd) for d in r['gans'].values()]
    r[fd] = float(np.mean(fds)) if fds and None not in fds else None
  arms: dict[str, dict[str, Any]] = {}
  for arm in dict.fromkeys(r['gan_arm'] for r in records):
    done = [r for r in records if r['gan_arm'] == arm and 'test' in r]
    arms[arm] = {'runs': len(done), fd: _interval([r[fd] for r in done])}
    for metric in utility.METRICS:
      arms[arm][metric] = _interval([r['test'][metric] for r in done])
  points = [r for r in records if 'test' in r and r[fd] is not None]
  correlations = {
    metric: _correlation([r[fd] for r in points], [r['test'][metric] for r in points])
    for metric in ('accuracy', 'pneumonia_auc')
  }
  return {'fd_metric': fd, 'arms': arms, 'correlation_with_fd': correlations}


# --- Figures -------------------------------------------------------------


def _err(entry: dict | None) -> tuple[float, float]:
  """(mean, half-width) for an error bar; half-width 0 without an interval."""
  if not entry:
    return math.nan, 0.0
  half = (entry['high'] - entry['low']) / 2 if math.isfinite(entry['low']) else 0.0
  return entry['mean'], half


def plot_utility(summary: dict, metric: str, path: pathlib.Path) -> str:
  """Per class set: real and mixed bars over real-data fractions; the TSTR level as a band."""
  cells = summary['cells'].values()
  class_sets = list(dict.fromkeys(c['classes'] for c in cells))
  fig, axes = plt.subplots(1, len(class_sets), figsize=(5 * len(class_sets), 4), squeeze=False)
  for ax, classes in zip(axes[0], class_sets):
    fractions = sorted({c['fraction'] for c in cells if c['classes'] == classes and c['fraction']})
    x = np.arange(len(fractions))
    for i, arm in enumerate(('real', 'mixed')):
      got = {c['fraction']: c[metric] for c in cells if c['classes'] == classes and c['arm'] == arm}
      means, halves = zip(*[_err(got.get(f)) for f in fractions]) if fractions else ((), ())
      ax.bar(x + (i - 0.5) * 0.38, means, 0.38, yerr=halves, capsize=3, label=arm, color=f'C{i}')
    syn = next((c for c in cells if c['classes'] == classes and c['arm'] == 'synthetic'), None)
    if syn and syn[metric]:
      mean, half = _err(syn[metric])
      ax.axhline(mean, color='C3', label='synthetic only (TSTR)')
      ax.axhspan(mean - half, mean + half, color='C3', alpha=0.15)
    ax.set_xticks(x, [f'{f:.0%} real' for f in fractions])
    ax.set_ylabel(f'test {metric}')
    ax.set_title(classes.replace('+', ' vs '))
    ax.set_ylim(0.0, 1.0)
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=7, loc='lower right')
  return gan_report.save_figure(fig, path)


def plot_fd_vs_accuracy(records: Sequence[dict], summary: dict, path: pathlib.Path) -> str:
  """One point per GAN run (arm colour): mean final FD of its class GANs vs TSTR accuracy."""
  fd = summary['fd_metric']
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  colours = [gan_report.arm_colour(i, len(summary['arms'])) for i in range(len(summary['arms']))]
  for i, arm in enumerate(summary['arms']):
    pts = [
      (r[fd], r['test']['accuracy'])
      for r in records
      if r['gan_arm'] == arm and 'test' in r and r[fd] is not None
    ]
    if pts:
      ax.scatter(*zip(*pts), color=colours[i], label=arm)
  corr = summary['correlation_with_fd'].get('accuracy')
  if corr:
    ax.set_title(
      f'Pearson r={corr["pearson_r"]:.2f} (p={corr["pearson_p"]:.2g}), '
      f'Spearman ρ={corr["spearman_rho"]:.2f} (p={corr["spearman_p"]:.2g}), n={corr["n"]}',
      fontsize=9,
    )
  ax.set_xlabel(f'mean final {fd} of the class GANs (lower is closer to real)')
  ax.set_ylabel('TSTR test accuracy')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  return gan_report.save_figure(fig, path, colours=colours)


# --- Markdown -------------------------------------------------------------


def _fmt(entry: dict | None) -> str:
  return stats.Interval(**entry).format(3) if entry else '-'


def _setup_lines(study, records: Sequence[dict]) -> list[str]:
  clf = study.classifier
  return [
    f'# Study: {study.name}',
    '',
    study.get('description', ''),
    '',
    f'Seeds: {sorted({r["seed"] for r in records})}. Classifier: {clf.resolution} px, {clf.num_steps} steps of '
    f'batch {clf.batch_size}, best validation step kept, scored on the real patient-disjoint '
    'test split. Intervals: 95% t over seeds.',
    '',
  ]


def markdown_utility(study, summary: dict, records, figures: dict[str, str]) -> str:
  lines = _setup_lines(study, records)
  lines += [
    f'Synthetic images: {study.num_synthetic} per class from each GAN (seed k reads GAN seed '
    f'k); `mixed` adds {study.synthetic_per_real:g} synthetic image per real one, per class.',
    '',
    '| classes | arm | real data | runs | ' + ' | '.join(utility.METRICS) + ' |',
    '|' + '---|' * (4 + len(utility.METRICS)),
  ]
  for cell in summary['cells'].values():
    fraction = '-' if cell['fraction'] is None else f'{cell["fraction"]:.0%}'
    row = [cell['classes'].replace('+', ' vs '), f'`{cell["arm"]}`', fraction, str(cell['runs'])]
    lines.append('| ' + ' | '.join(row + [_fmt(cell[m]) for m in utility.METRICS]) + ' |')
  lines += ['', '## TSTR / TRTR', '', '| classes | accuracy ratio | AUC ratio |', '|---|---|---|']
  for classes, ratio in summary['tstr_over_trtr'].items():
    lines.append(
      f'| {classes.replace("+", " vs ")} | {_fmt(ratio.get("accuracy"))} | '
      f'{_fmt(ratio.get("pneumonia_auc"))} |'
    )
  lines += [
    '',
    '## Real + synthetic against real alone (accuracy)',
    '',
    '| classes | real data | Δ accuracy | verdict |',
    '|---|---|---|---|',
  ]
  for classes, by_fraction in summary['mixed_vs_real_accuracy'].items():
    for fraction, entry in by_fraction.items():
      lines.append(
        f'| {classes.replace("+", " vs ")} | {float(fraction):.0%} | '
        f'{_fmt(entry["difference"])} | {entry["verdict"]} |'
      )
  return _with_figures(lines, figures)


def markdown_gan_utility(study, summary: dict, records, figures: dict[str, str]) -> str:
  fd = summary['fd_metric']
  lines = _setup_lines(study, records)
  lines += [
    'GAN studies: '
    + ', '.join(f'{c}: `{pathlib.Path(d).name}`' for c, d in study.gan_studies.items())
    + f'. One TSTR classifier per (arm, seed), trained on {study.num_synthetic} samples per '
    "class of that run's final checkpoint.",
    '',
    f'| GAN arm | runs | mean final {fd} | TSTR accuracy | TSTR AUC | sensitivity | specificity |',
    '|---|---|---|---|---|---|---|',
  ]
  for arm, entry in summary['arms'].items():
    lines.append(
      f'| `{arm}` | {entry["runs"]} | {_fmt(entry[fd])} | {_fmt(entry["accuracy"])} | '
      f'{_fmt(entry["pneumonia_auc"])} | {_fmt(entry["pneumonia_sensitivity"])} | '
      f'{_fmt(entry["pneumonia_specificity"])} |'
    )
  lines += ['', f'## Does {fd} predict usefulness?', '']
  for metric, corr in summary['correlation_with_fd'].items():
    if corr:
      lines.append(
        f'- TSTR {metric} against {fd}, over {corr["n"]} runs: Pearson r = '
        f'{corr["pearson_r"]:.2f} (p = {corr["pearson_p"]:.2g}), Spearman ρ = '
        f'{corr["spearman_rho"]:.2f} (p = {corr["spearman_p"]:.2g}).'
      )
    else:
      lines.append(f'- TSTR {metric}: too few finished runs (or no spread) for a correlation.')
  return _with_figures(lines, figures)


def _with_figures(lines: list[str], figures: dict[str, str]) -> str:
  lines += ['', '## Figures', '']
  for title, name in figures.items():
    lines += [f'### {title}', '', f'![{title}]({gan_report.FIGURES}/{name})', '']
  return '\n'.join(lines) + '\n'


def write(study, study_dir: pathlib.Path, records: list[dict]) -> tuple[dict, pathlib.Path]:
  """(summary, report path): results.json, figures and report.md of a classifier study."""
  fig_dir = study_dir / gan_report.FIGURES
  figures = {}
  if study.kind == 'utility':
    summary = summarize_utility(records, float(study.get('margin', 0.1)))
    if any('test' in r for r in records):
      for metric in ('accuracy', 'pneumonia_auc'):
        figures[f'Test {metric} by training data'] = plot_utility(
          summary, metric, fig_dir / f'utility_{metric}.png'
        )
    text = markdown_utility(study, summary, records, figures)
  else:
    summary = summarize_gan_utility(records, study.get('fd_metric', 'fd_cxr'))
    if any('test' in r for r in records):
      figures[f'{summary["fd_metric"]} against TSTR accuracy'] = plot_fd_vs_accuracy(
        records, summary, fig_dir / 'fd_vs_tstr_accuracy.png'
      )
    text = markdown_gan_utility(study, summary, records, figures)
  gan_report.write_results(study_dir / 'results.json', records, summary)
  path = study_dir / 'report.md'
  files.write_text(path, text)
  return summary, path
