"""report.md and its figures, drawn from the study's saved JSON only.

Figures (PNG, matplotlib): quality against training time per arm, the Pareto
plot of final quality against wall-clock, bars with 95% intervals, the final
fixed-latent grids of every arm side by side, and per run a training
progression strip (+ animated GIF) of the fixed-latent grid over steps.
"""

from collections.abc import Sequence
import io
import json
import pathlib
from typing import Any

import matplotlib

matplotlib.use('Agg')
from matplotlib import ticker  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from cxrgan_jax import files  # noqa: E402
from cxrgan_jax.study import results  # noqa: E402
from cxrgan_jax.study import spec  # noqa: E402

FIGURES = 'figures'
MAX_STRIP_FRAMES = 8


# The committed reports stay small: plots as 64-colour PNGs (a third of RGBA's
# size, lines and text unchanged to the eye), sample figures as gray PNGs
# posterised to 32 levels (40% of the bytes of 256; at 64 px the samples'
# own grain hides the steps).
PLOT_COLOURS = 64
SAMPLE_GRAY_LEVELS = 32
FLOOR_GRAY = '0.3'  # The dashed line of the real images' floor.
# Significant digits of results.json's floats (see files.write_json): four
# is finer than any score here is measured (their seed-to-seed spread is
# percents). With the metric names written once, 40% fewer bytes than six.
RESULTS_DIGITS = 4
# results.json: the score columns and each scored point on one line
# (runs > run > scores > point).
RESULTS_INLINE_DEPTH = 5


def write_results(path: pathlib.Path, records: Sequence[dict], summary: dict) -> None:
  """A study's results.json: every run's record and the summary, floats rounded.

  Scored points are rows under one `score_columns` list for the whole file,
  so the dozens of metric names are written once, not once per run or point.
  Columns that hold one value throughout every run (the real split's own
  statistics, the sample counts) go under `fixed_score_columns` instead, with
  each run's values written once, as its `fixed_scores`.
  """
  scored = [r for r in records if isinstance(r.get('scores'), list)]
  columns = sorted(
    {k for r in scored for p in r['scores'] for k in p}, key=lambda k: (k != 'step', k)
  )
  fixed = [
    k
    for k in columns
    if k != 'step'
    and all(k in p for r in scored for p in r['scores'])
    and all(len({p[k] for p in r['scores']}) <= 1 for r in scored)
  ]
  varying = [k for k in columns if k not in fixed]
  runs = []
  for r in records:
    points = r.get('scores')
    if isinstance(points, list):
      r = {**r, 'scores': [[p.get(k) for k in varying] for p in points]}
      if fixed and points:
        r['fixed_scores'] = [points[0][k] for k in fixed]
    runs.append(r)
  saved = {'runs': runs, 'summary': summary}
  if scored:
    saved['score_columns'] = varying
    if fixed:
      saved['fixed_score_columns'] = fixed
  files.write_json(
    path, saved, significant_digits=RESULTS_DIGITS, inline_depth=RESULTS_INLINE_DEPTH
  )


def read_results(path: pathlib.Path) -> tuple[list[dict], dict]:
  """(records, summary) of a results.json, each run's scores as a list of points."""
  saved = json.loads(path.read_text())
  columns = saved.get('score_columns')
  fixed_columns = saved.get('fixed_score_columns', [])
  records = []
  for record in saved['runs']:
    record = dict(record)
    scores = record.get('scores')
    fixed = dict(zip(fixed_columns, record.pop('fixed_scores', [])))
    if isinstance(scores, dict):  # Written before score_columns: a table per run.
      columns_here, rows = scores['columns'], scores['rows']
    elif columns is not None and isinstance(scores, list):
      columns_here, rows = columns, scores
    else:
      records.append(record)
      continue
    points = [
      {k: v for k, v in (*zip(columns_here, row), *fixed.items()) if v is not None} for row in rows
    ]
    records.append({**record, 'scores': points})
  return records, saved['summary']


def posterise(image: Image.Image, levels: int) -> Image.Image:
  """A gray image with `levels` evenly spaced levels, each at its bin's centre."""
  step = 256 // levels
  return image.convert('L').point(lambda v: v // step * step + step // 2)


def plot_palette(image: Image.Image, keep: Sequence = ()) -> Image.Image:
  """`image` in at most PLOT_COLOURS colours, with every colour of `keep` exactly.

  A palette fitted to the pixels alone can merge two thin lines' colours
  (median cut once drew matplotlib's blue and green arms both in one teal),
  because lines cover few pixels next to the bands and the background.
  """
  rgb = image.convert('RGB')
  exact = list(dict.fromkeys(tuple(round(255 * c) for c in to_rgb(k)) for k in keep))
  fitted = max(1, PLOT_COLOURS - len(exact))
  rest = rgb.quantize(colors=fitted, method=Image.Quantize.MEDIANCUT).getpalette()[: 3 * fitted]
  reference = Image.new('P', (1, 1))
  reference.putpalette([v for colour in exact for v in colour] + rest)
  return rgb.quantize(palette=reference, dither=Image.Dither.NONE)


def save_figure(fig, path: pathlib.Path, samples: bool = False, colours: Sequence = ()) -> str:
  """A small PNG of a figure: a palette for plots (white, black, the floor's gray,
  matplotlib's first 10 colours and `colours` kept exactly), posterised gray for
  `samples`."""
  path.parent.mkdir(parents=True, exist_ok=True)
  buffer = io.BytesIO()
  fig.savefig(buffer, dpi=110, bbox_inches='tight', format='png')
  plt.close(fig)
  image = Image.open(buffer)
  if samples:
    image = posterise(image, SAMPLE_GRAY_LEVELS)
  else:
    kept = ['white', 'black', FLOOR_GRAY] + [f'C{i}' for i in range(10)] + list(colours)
    image = plot_palette(image, kept)
  with files.atomic_write(path) as f:
    image.save(f, format='PNG', optimize=True)
  return path.name


def arm_colour(index: int, num_arms: int):
  """Matplotlib's 10-colour cycle, or tab20's 20 where more arms would share one."""
  return f'C{index}' if num_arms <= 10 else plt.get_cmap('tab20')(index % 20)


CURVE_POINTS = 60  # Time-grid points of an arm's median curve.


def seed_band(
  curves: Sequence[tuple[Sequence[float], Sequence[float]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(t, median, low, high) over the seeds' curves, each interpolated on one time grid.

  A seed counts at time t only inside its own scored range, so a run that
  stopped early does not drag the others' tail; min/max is the band. The
  median is NaN (not drawn) where fewer than half the seeds count: the
  last seconds of the longest runs alone would make its end jump.
  """
  start = min(x[0] for x, _ in curves)
  end = max(x[-1] for x, _ in curves)
  t = np.linspace(start, end, CURVE_POINTS)
  values = np.full((len(curves), t.size), np.nan)
  for i, (x, y) in enumerate(curves):
    inside = (t >= x[0]) & (t <= x[-1])
    values[i, inside] = np.interp(t[inside], x, y)
  counted = np.sum(~np.isnan(values), axis=0)
  keep = counted > 0
  values, counted = values[:, keep], counted[keep]
  median = np.where(2 * counted >= len(curves), np.nanmedian(values, axis=0), np.nan)
  return t[keep], median, np.nanmin(values, axis=0), np.nanmax(values, axis=0)


def _draw_floor(ax, values: Sequence[float] | None, **kwargs) -> float | None:
  """The real-image floor's mean as a dashed line; returns it (None: no floor)."""
  if not values:
    return None
  mean = float(np.mean(values))
  ax.axhline(mean, color=FLOOR_GRAY, ls='--', lw=0.9, **kwargs)
  return mean


def plot_curves(
  records: Sequence[dict],
  metrics: Sequence[str],
  path: pathlib.Path,
  reference: dict | None = None,
) -> str:
  """Each metric against training minutes, a panel each: per arm, the median over
  seeds and the band from the lowest to the highest seed (one line per seed for
  16 seeds is unreadable, and 2.5 times the bytes)."""
  cols = min(3, len(metrics))
  rows = -(-len(metrics) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.2 * rows), squeeze=False)
  arms = list(dict.fromkeys(r['arm'] for r in records))
  colours = {arm: arm_colour(i, len(arms)) for i, arm in enumerate(arms)}
  for ax in axes.ravel()[len(metrics) :]:
    ax.axis('off')
  for ax, metric in zip(axes.ravel(), metrics):
    values = []
    for arm in arms:
      curves = []
      for record in (r for r in records if r['arm'] == arm):
        points = [
          (s['seconds'] / 60, s[metric])
          for s in record['scores']
          if s.get(metric) is not None and np.isfinite(s[metric])
        ]
        if points:
          curves.append(tuple(zip(*sorted(points))))
      if not curves:
        continue
      t, median, low, high = seed_band(curves)
      ax.plot(t, median, lw=1.2, color=colours[arm])
      if len(curves) > 1:
        ax.fill_between(t, low, high, color=colours[arm], alpha=0.15, lw=0)
      values += [v for _, y in curves for v in y]
    floor = _draw_floor(ax, (reference or {}).get('values', {}).get(metric))
    if floor is not None:
      values.append(floor)
    if values and min(values) > 0 and max(values) > 10 * min(values):
      ax.set_yscale('log')  # FD falls over orders of magnitude early in training.
      for axis_labels in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis_labels(ticker.FormatStrFormatter('%g'))  # 0.4, not 4x10^-1.
    ax.set_title(metric, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
  for ax in axes[-1]:
    ax.set_xlabel('training time (minutes)', fontsize=7)
  handles = [plt.Line2D([], [], color=colours[a], label=a) for a in arms]
  if reference:
    label = f'real {reference["split"]} images (mean of {reference["subsets"]} sets)'
    handles.append(plt.Line2D([], [], color=FLOOR_GRAY, ls='--', label=label))
  fig.legend(
    handles=handles,
    loc='lower center',
    ncol=min(5, len(handles)),
    fontsize=7,
    bbox_to_anchor=(0.5, 1.0),
    frameon=False,
  )
  fig.tight_layout()
  return save_figure(fig, path, colours=colours.values())


def plot_pareto(summary: dict, metric: str, path: pathlib.Path) -> str:
  """Final metric against wall-clock per arm (mean, 95% interval); the front in red."""
  points = []
  for name, arm in summary['arms'].items():
    s = arm['summary']
    if metric in s and 'train_seconds' in s:
      m = results.interval(s[metric]['mean'])
      points.append((s['train_seconds']['mean']['mean'] / 60, m, name))
  fig, ax = plt.subplots(figsize=(7, 4.5))
  front = _pareto_front([(x, m.mean) for x, m, _ in points])
  for i, (x, m, name) in enumerate(points):
    err = None if not np.isfinite(m.low) else [[m.mean - m.low], [m.high - m.mean]]
    ax.errorbar(x, m.mean, yerr=err, fmt='o', color='C3' if i in front else 'C0', capsize=3)
    ax.annotate(name, (x, m.mean), fontsize=6, xytext=(3, 3), textcoords='offset points')
  ax.set_xlabel('training time (minutes)')
  ax.set_ylabel(f'final {metric} (lower is better)')
  ax.grid(alpha=0.3)
  return save_figure(fig, path)


def _pareto_front(points: Sequence[tuple[float, float]]) -> set[int]:
  """Indices not dominated in (time, metric), both lower-is-better."""
  return {
    i
    for i, (x, y) in enumerate(points)
    if not any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for x2, y2 in points)
  }


def plot_bars(summary: dict, metric: str, path: pathlib.Path) -> str:
  names, means, lows, highs = [], [], [], []
  for name, arm in summary['arms'].items():
    if metric in arm['summary']:
      m = results.interval(arm['summary'][metric]['mean'])
      names.append(name)
      means.append(m.mean)
      lows.append(m.mean - m.low if np.isfinite(m.low) else 0.0)
      highs.append(m.high - m.mean if np.isfinite(m.high) else 0.0)
  fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(names) + 2), 4))
  ax.bar(range(len(names)), means, yerr=[lows, highs], capsize=3, color='C0')
  floor = summary.get('reference', {}).get('values', {}).get(metric)
  if _draw_floor(ax, floor, label='real training images') is not None:
    ax.legend(fontsize=7)
  ax.set_xticks(range(len(names)), names, rotation=45, ha='right', fontsize=7)
  ax.set_ylabel(f'final {metric} (95% interval over seeds)')
  ax.grid(axis='y', alpha=0.3)
  return save_figure(fig, path)


def _grid_paths(run_dir: pathlib.Path) -> list[pathlib.Path]:
  return sorted((run_dir / 'samples').glob('step_*.png'))


# Samples per side of the crops of a run's fixed-latent grid that the figures
# show at native resolution: a whole grid scaled to a figure tile shrinks each
# X-ray to a few pixels, and a crop is legible and smaller on disk.
FINAL_GRID_SIDE = 3
PROGRESSION_SIDE = 2
GIF_GRAY_LEVELS = 16  # Coarser than the PNGs': GIF compresses levels less well.


def grid_crop(path: pathlib.Path, resolution: int, side: int) -> Image.Image:
  """The top-left side x side samples of a grid written by images.make_grid (pad 2).

  The whole grid when its size does not fit `resolution` (an arm that changed it).
  """
  grid = Image.open(path).convert('L')
  cell = resolution + 2
  if (grid.width + 2) % cell or (grid.height + 2) % cell:
    return grid
  extent = min(side * cell - 2, grid.width, grid.height)
  return grid.crop((0, 0, extent, extent))


def final_grids(
  study_dir: pathlib.Path, records: Sequence[dict], path: pathlib.Path, resolution: int
) -> str | None:
  """The last fixed-latent grid of each arm's first finished seed, side by side (crops)."""
  tiles, names = [], []
  for record in records:
    if record['status'] != results.FINISHED or record['arm'] in names:
      continue
    grids = _grid_paths(study_dir / record['name'])
    if grids:
      tiles.append(np.asarray(grid_crop(grids[-1], resolution, FINAL_GRID_SIDE)))
      names.append(record['arm'])
  if not tiles:
    return None
  cols = min(5, len(tiles))
  rows = -(-len(tiles) // cols)
  inches = max(t.shape[1] for t in tiles) / 110  # save_figure's dpi: about one pixel per pixel.
  fig, axes = plt.subplots(
    rows, cols, figsize=(inches * cols, (inches + 0.25) * rows), squeeze=False
  )
  for ax in axes.ravel():
    ax.axis('off')
  for ax, tile, name in zip(axes.ravel(), tiles, names):
    ax.imshow(tile, cmap='gray', vmin=0, vmax=255)
    ax.set_title(name, fontsize=7)
  return save_figure(fig, path, samples=True)


def progression(
  run_dir: pathlib.Path, out_dir: pathlib.Path, stem: str, resolution: int
) -> list[str]:
  """The fixed-latent grid (a crop) at successive steps: a PNG strip and an animated GIF."""
  grids = _grid_paths(run_dir)
  if not grids:
    return []
  picks = [
    grids[i]
    for i in np.unique(np.linspace(0, len(grids) - 1, MAX_STRIP_FRAMES).round().astype(int))
  ]
  frames = [grid_crop(p, resolution, PROGRESSION_SIDE) for p in picks]
  strip = np.concatenate(
    [np.pad(np.asarray(f), ((16, 0), (0, 4)), constant_values=255) for f in frames], axis=1
  )
  fig, ax = plt.subplots(figsize=(strip.shape[1] / 100, strip.shape[0] / 100 + 0.2))
  ax.imshow(strip, cmap='gray', vmin=0, vmax=255)
  ax.axis('off')
  x = 0
  for path, frame in zip(picks, frames):
    ax.text(x + 2, 12, f'step {int(path.stem.split("_")[1])}', fontsize=6)
    x += frame.width + 4
  out_dir.mkdir(parents=True, exist_ok=True)
  names = [save_figure(fig, out_dir / f'{stem}_progression.png', samples=True)]
  gif = out_dir / f'{stem}_progression.gif'
  with files.atomic_write(gif) as f:
    levels = [posterise(frame, GIF_GRAY_LEVELS) for frame in frames]
    levels[0].save(
      f, format='GIF', save_all=True, append_images=levels[1:], duration=600, loop=0, optimize=True
    )
  names.append(gif.name)
  return names


def _existing(fig_dir: pathlib.Path, names: Sequence[str]) -> list[str]:
  """`names`, if every one of them is a file in fig_dir; else []."""
  return list(names) if all((fig_dir / n).is_file() for n in names) else []


def spec_control(summary: dict) -> bool:
  """Whether the study has a control arm with finished runs to compare against."""
  control = summary['arms'].get(summary['control'])
  return bool(control and control['runs'])


def _fmt(entry: dict | None, digits: int = 3) -> str:
  return results.interval(entry).format(digits) if entry else '-'


def _range_text(values: Sequence[float] | None, digits: int = 3) -> str:
  """'0.276 (0.177-0.399)': the mean, then the lowest and highest value."""
  if not values:
    return '-'
  f = lambda v: f'{v:.{digits}g}'
  return f'{f(float(np.mean(values)))} ({f(min(values))}-{f(max(values))})'


def _budget_text(budget: Any) -> str:
  """'800 steps', '2.0 min' or '800 steps or 2.0 min, whichever comes first'."""
  parts = [f'{budget.steps} steps'] if budget.get('steps') else []
  parts += [f'{budget.minutes:g} min'] if budget.get('minutes') else []
  return ' or '.join(parts) + (', whichever comes first' if len(parts) == 2 else '')


def markdown(study: Any, summary: dict, records: Sequence[dict], figures: dict[str, str]) -> str:
  """The report's text: setup, per-arm table with intervals and verdicts, failures, figures."""
  metrics = list(summary['metrics'])
  primary = metrics[0]
  control = summary['control']
  lines = [
    f'# Study: {study.name}',
    '',
    study.get('description', ''),
    '',
    f'Seeds: {list(study.seeds)}. Budget per run: {_budget_text(study.budget)}. '
    f'Scored every {study.eval.every_steps} steps against the real '
    f'`{study.eval.get("split", "test")}` split. Intervals: 95% t over seeds; '
    f'verdicts against `{control}`: helps / hurts when the interval of the '
    f'difference excludes 0, negligible when it lies within '
    f'+-{summary["margin"]:.0%} of the control, inconclusive otherwise.',
    '',
  ]
  kept_best = sorted({r['arm'] for r in records if r.get('best')})
  if kept_best:
    lines += [
      f'Arms that keep a best checkpoint ({", ".join(f"`{a}`" for a in kept_best)}: the '
      'lowest in-training FD on the validation split) report it as their final value, '
      'as `sample --which=best` samples it; their curves show every kept checkpoint.',
      '',
    ]
  floor = summary.get('reference')
  if floor:
    lines += [
      f'The last row scores {floor["subsets"]} random sets of {floor["num_images"]} real '
      f"`{floor['split']}` images exactly as a run's samples are (mean, lowest to highest): "
      'what a generator reproducing its training data would reach, the floor of each measure.',
      '',
    ]
  header = ['arm', 'runs'] + [f'final {m}' for m in metrics]
  header += [f'Δ{primary} vs {control}', 'verdict', 'img/s', 'train min']
  if summary['threshold']:
    header.append(f'time to {summary["threshold"][0]} <= {summary["threshold"][1]:g}')
  lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for name, arm in summary['arms'].items():
    s = arm['summary']
    row = [
      f'`{name}`',
      f'{len(arm["runs"])} ok' + (f', {len(arm["failed"])} failed' if arm['failed'] else ''),
    ]
    row += [_fmt(s.get(m, {}).get('mean')) for m in metrics]
    row += [_fmt(s.get(primary, {}).get('difference')), s.get(primary, {}).get('verdict', '-')]
    row.append(f'{s["images_per_sec"]["mean"]["mean"]:.1f}' if 'images_per_sec' in s else '-')
    row.append(f'{s["train_seconds"]["mean"]["mean"] / 60:.1f}' if 'train_seconds' in s else '-')
    if summary['threshold']:
      t = s.get('time_to_threshold', {})
      row.append(
        f'{t["mean_seconds"] / 60:.1f} min ({t["reached"]}/{t["of"]})'
        if t.get('mean_seconds') is not None
        else f'not reached (0/{t.get("of", 0)})'
      )
    lines.append('| ' + ' | '.join(row) + ' |')
  if floor:
    row = [f'real `{floor["split"]}` images (reference)', f'{floor["subsets"]} subsets']
    row += [_range_text(floor['values'].get(m)) for m in metrics]
    row += ['-'] * (len(header) - len(row))
    lines.append('| ' + ' | '.join(row) + ' |')
  others = [m for m in metrics if m != primary]
  if others and spec_control(summary):
    lines += [
      '',
      f'## Every metric against `{control}`',
      '',
      f'Difference of the final value from `{control}` (95% Welch t interval) and its verdict.',
      '',
      '| arm | ' + ' | '.join(others) + ' |',
      '|' + '---|' * (1 + len(others)),
    ]
    for name, arm in summary['arms'].items():
      cells = [arm['summary'].get(m, {}) for m in others]
      if not any('verdict' in c for c in cells):
        continue
      lines.append(
        f'| `{name}` | '
        + ' | '.join(f'{_fmt(c.get("difference"))} {c.get("verdict", "-")}' for c in cells)
        + ' |'
      )
  for peer, table in summary.get('against_peers', {}).items():
    lines += [
      '',
      f'## Against `{peer}`',
      '',
      f"Difference of each arm's final value from `{peer}` at the same budget (95% Welch t "
      'interval) and its verdict: "helps" means the arm beats the peer on that metric.',
      '',
      '| arm | ' + ' | '.join(metrics) + ' |',
      '|' + '---|' * (1 + len(metrics)),
    ]
    for name, cells in table.items():
      lines.append(
        f'| `{name}` | '
        + ' | '.join(
          f'{_fmt(cells[m]["difference"])} {cells[m]["verdict"]}' if m in cells else '-'
          for m in metrics
        )
        + ' |'
      )
  failed = [(name, f) for name, arm in summary['arms'].items() for f in arm['failed']]
  if failed:
    lines += ['', '## Failed runs', '']
    lines += [f'- `{name}` seed {f["seed"]}: {f["error"]}' for name, f in failed]
  lines += ['', '## Figures', '']
  for title, name in figures.items():
    lines += [f'### {title}', '', f'![{title}]({FIGURES}/{name})', '']
  return '\n'.join(lines) + '\n'


def write(
  study: Any,
  study_dir: pathlib.Path,
  records: Sequence[dict],
  summary: dict,
  *,
  keep_sample_figures: bool = False,
) -> pathlib.Path:
  """Draws every figure and writes report.md; returns its path.

  `keep_sample_figures`: where the run folders are gone, the grids and
  progressions already in the figures folder are kept and shown.
  """
  fig_dir = study_dir / FIGURES
  primary = next(iter(summary['metrics']))
  figures = {}
  if any(r['scores'] for r in records):
    figures['Quality over training time (median over seeds; band: lowest to highest seed)'] = (
      plot_curves(
        records, list(summary['metrics']), fig_dir / 'curves.png', summary.get('reference')
      )
    )
    figures[f'Pareto: final {primary} vs training time'] = plot_pareto(
      summary, primary, fig_dir / 'pareto.png'
    )
    figures[f'Final {primary} per arm'] = plot_bars(summary, primary, fig_dir / 'bars.png')
  resolution = study.base.resolution
  grids = final_grids(study_dir, records, fig_dir / 'final_grids.png', resolution)
  if not grids and keep_sample_figures and _existing(fig_dir, ['final_grids.png']):
    grids = 'final_grids.png'
  if grids:
    figures['Final fixed-latent grids'] = grids
  # Every run gets a strip and a GIF (report.progression='first_seed': only each
  # arm's first seed, to keep committed results small; 'none': no run); the
  # report shows each arm's first seed and links the rest.
  mode = spec.progression_mode(study)
  strips, shown = [], set()
  for record in records:
    if mode == 'none' or (mode == 'first_seed' and record['arm'] in shown):
      continue
    stem = record['name'].replace('/', '_')
    made = progression(study_dir / record['name'], fig_dir, stem, resolution)
    if not made and keep_sample_figures:
      made = _existing(fig_dir, [f'{stem}_progression.png', f'{stem}_progression.gif'])
    if not made:
      continue
    if record['arm'] not in shown:
      shown.add(record['arm'])
      figures[f'Training progression: {record["name"]}'] = made[0]
    strips.append((record['name'], made))
  text = markdown(study, summary, records, figures)
  if strips:
    text += (
      "\n## Every run's progression\n\n"
      + '\n'.join(
        f'- `{name}`: [strip]({FIGURES}/{png}), [GIF]({FIGURES}/{gif})'
        for name, (png, gif) in strips
      )
      + '\n'
    )
  path = study_dir / 'report.md'
  files.write_text(path, text)
  return path
