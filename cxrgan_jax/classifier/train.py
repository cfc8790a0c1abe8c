"""Trains the X-ray classifier, keeps its best validation step, reports test figures.

Class imbalance (train: ~25% normal, ~50% bacterial, ~25% viral) is handled by
balanced sampling by default: every batch draws the class uniformly, then an
image of that class, so the net does not learn the majority prior.
"""

from collections.abc import Sequence
import pathlib
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import scipy.stats

from cxrgan_jax import files
from cxrgan_jax.classifier import data
from cxrgan_jax.classifier import inference
from cxrgan_jax.classifier.model import CxrNet
from cxrgan_jax.classifier.model import augment
from cxrgan_jax.classifier.model import make_model
from cxrgan_jax.classifier.model import to_model_input


def _make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  schedule = optax.warmup_cosine_decay_schedule(
    0.0, config.learning_rate, config.warmup_steps, max(config.num_steps, config.warmup_steps + 1)
  )
  return optax.adamw(schedule, weight_decay=config.weight_decay)


def _make_train_step(
  model: CxrNet,
  tx: optax.GradientTransformation,
  config: ml_collections.ConfigDict,
  class_weights: np.ndarray,
):
  max_shift = int(round(config.max_shift_fraction * config.resolution))
  weights = jnp.asarray(class_weights, jnp.float32)

  @jax.jit
  def train_step(
    state: dict, images: jax.Array, labels: jax.Array, rng: jax.Array
  ) -> tuple[dict, dict]:
    k_aug, k_drop = jax.random.split(jax.random.fold_in(rng, state['step']))
    x = augment(k_aug, to_model_input(images, config.resolution), max_shift)

    def loss_fn(params):
      logits, _ = model.apply({'params': params}, x, train=True, rngs={'dropout': k_drop})
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      w = weights[labels]
      return (w * ce).sum() / w.sum(), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state['params'])
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    new_state = dict(
      params=optax.apply_updates(state['params'], updates),
      opt_state=opt_state,
      step=state['step'] + 1,
    )
    acc = (logits.argmax(-1) == labels).mean()
    return new_state, {'loss': loss, 'accuracy': acc}

  return train_step


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
  """Area under the ROC curve: P(score of a positive > score of a negative), ties half.

  The Mann-Whitney form with average ranks; NaN when a side is empty.
  """
  scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
  n_pos, n_neg = int(positive.sum()), int((~positive).sum())
  if not n_pos or not n_neg:
    return float('nan')
  ranks = scipy.stats.rankdata(scores)
  return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(
  labels: np.ndarray,
  predictions: np.ndarray,
  class_names: Sequence[str],
  probabilities: np.ndarray | None = None,
) -> dict[str, Any]:
  """Accuracy, per-class and pneumonia-vs-normal sensitivity/specificity.

  Per class c (one vs rest): sensitivity = TP/(TP+FN), specificity =
  TN/(TN+FP). Pneumonia vs normal merges every class but label 0 (normal),
  as in Kermany et al. 2018: a bacterial image called viral still counts as
  a detected pneumonia. NaN where a denominator is empty.
  """
  labels = np.asarray(labels)
  predictions = np.asarray(predictions)
  k = len(class_names)
  confusion = np.zeros((k, k), np.int64)
  np.add.at(confusion, (labels, predictions), 1)
  div = lambda a, b: float(a / b) if b else float('nan')
  out: dict[str, Any] = {
    'num_examples': int(len(labels)),
    'accuracy': div(np.trace(confusion), confusion.sum()),
    'confusion_matrix': confusion.tolist(),  # Rows true, columns predicted.
  }
  recalls = []
  for c, name in enumerate(class_names):
    tp = confusion[c, c]
    fn = confusion[c].sum() - tp
    fp = confusion[:, c].sum() - tp
    tn = confusion.sum() - tp - fn - fp
    out[f'sensitivity_{name}'] = div(tp, tp + fn)
    out[f'specificity_{name}'] = div(tn, tn + fp)
    recalls.append(out[f'sensitivity_{name}'])
  out['balanced_accuracy'] = float(np.nanmean(recalls))
  true_p, pred_p = labels != 0, predictions != 0
  out['pneumonia_accuracy'] = div(np.sum(true_p == pred_p), len(labels))
  out['pneumonia_sensitivity'] = div(np.sum(true_p & pred_p), np.sum(true_p))
  out['pneumonia_specificity'] = div(np.sum(~true_p & ~pred_p), np.sum(~true_p))
  if probabilities is not None:  # float [N, classes], rows summing to 1.
    probabilities = np.asarray(probabilities, np.float64)
    out['pneumonia_auc'] = roc_auc(1.0 - probabilities[:, 0], true_p)
    per_class = [roc_auc(probabilities[:, c], labels == c) for c in range(k)]
    out['auc_macro'] = float(np.nanmean(per_class)) if k > 2 else out['pneumonia_auc']
  return out


def format_table(title: str, m: dict[str, Any], class_names: Sequence[str]) -> str:
  """Console table of `classification_metrics` output."""
  lines = [
    f'{title} (n={m["num_examples"]}): accuracy {m["accuracy"]:.3f}, '
    f'balanced accuracy {m["balanced_accuracy"]:.3f}',
    f'  {"class":<22}{"sensitivity":>12}{"specificity":>12}',
  ]
  for name in class_names:
    lines.append(f'  {name:<22}{m[f"sensitivity_{name}"]:>12.3f}{m[f"specificity_{name}"]:>12.3f}')
  lines.append(
    f'  {"pneumonia vs normal":<22}{m["pneumonia_sensitivity"]:>12.3f}'
    f'{m["pneumonia_specificity"]:>12.3f}'
    f'   (accuracy {m["pneumonia_accuracy"]:.3f})'
  )
  lines.append(
    '  confusion (rows true, cols predicted; '
    + '/'.join(class_names)
    + '): '
    + str(m['confusion_matrix'])
  )
  return '\n'.join(lines)


def _batch_sampler(labels: np.ndarray, num_classes: int, config: ml_collections.ConfigDict):
  """Yields int64 [batch_size] indices; class-uniform when balance='sampling'."""
  rng = np.random.default_rng(config.seed)
  by_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
  present = [c for c, idx in enumerate(by_class) if len(idx)]
  while True:
    if config.balance == 'sampling':
      classes = rng.choice(present, config.batch_size)
      yield np.array([rng.choice(by_class[c]) for c in classes])
    else:
      yield rng.choice(len(labels), config.batch_size, replace=False)


def _class_weights(counts: np.ndarray, balance: str) -> np.ndarray:
  """float32 [classes] loss weights: inverse frequency for balance='loss', else ones."""
  if balance != 'loss':
    return np.ones(len(counts), np.float32)
  return np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(counts), 0.0).astype(
    np.float32
  )


def _validate(model, params, images, labels, resolution) -> tuple[float, float]:
  """(mean cross-entropy, accuracy) on a held-out split."""
  logits, _ = inference.batched_forward(model, params, images, resolution)
  loss = float(optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean())
  return loss, float((logits.argmax(-1) == labels).mean())


def _fit(
  config: ml_collections.ConfigDict,
  model: CxrNet,
  train: tuple[np.ndarray, np.ndarray],
  val: tuple[np.ndarray, np.ndarray],
  class_weights: np.ndarray,
) -> tuple[Any, int, list[dict]]:
  """The training loop: (params of the best validation step, that step, history)."""
  tx = _make_optimizer(config)
  init_key, train_key = jax.random.split(jax.random.key(config.seed))
  dummy = jnp.zeros((1, config.resolution, config.resolution, 1))
  params = model.init(init_key, dummy)['params']
  state = dict(params=params, opt_state=tx.init(params), step=jnp.zeros((), jnp.int32))
  train_step = _make_train_step(model, tx, config, class_weights)
  sampler = _batch_sampler(train[1], len(class_weights), config)
  best = {'accuracy': -1.0, 'loss': np.inf, 'step': 0, 'params': params}
  history, running, t0 = [], [], time.time()
  for step in range(1, config.num_steps + 1):
    idx = next(sampler)
    state, m = train_step(state, train[0][idx], train[1][idx], train_key)
    running.append(m)
    if step % config.eval_every_steps and step != config.num_steps:
      continue
    val_loss, val_acc = _validate(model, state['params'], *val, config.resolution)
    train_m = jax.tree.map(lambda *v: float(np.mean(v)), *running)
    running = []
    history.append(
      dict(
        step=step,
        val_accuracy=val_acc,
        val_loss=val_loss,
        train_loss=train_m['loss'],
        train_accuracy=train_m['accuracy'],
      )
    )
    improved = (val_acc, -val_loss) > (best['accuracy'], -best['loss'])
    if improved:
      best = dict(
        accuracy=val_acc, loss=val_loss, step=step, params=jax.device_get(state['params'])
      )
    logging.info(
      'step %d: train loss %.3f acc %.3f | val loss %.3f acc %.3f%s (%.1fs)',
      *(step, train_m['loss'], train_m['accuracy'], val_loss, val_acc),
      ' *' if improved else '',
      time.time() - t0,
    )
  return best['params'], best['step'], history


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str | pathlib.Path
) -> dict[str, Any]:
  """Trains, keeps the best validation step, saves it, returns the metrics.

  The class names come from the dataset's label feature and are saved with
  the config, so inference needs no dataset.
  """
  if config.balance not in ('sampling', 'loss', 'none'):
    raise ValueError(f"config.balance={config.balance!r}; use 'sampling', 'loss' or 'none'.")
  if config.eval_every_steps < 1 or config.num_steps < 1:
    raise ValueError('config.num_steps and config.eval_every_steps must be >= 1.')
  workdir = pathlib.Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  config = ml_collections.ConfigDict(config.to_dict())
  class_names, sets = data.splits(config)
  config.class_names = list(class_names)
  splits = {name: (s.image, s.label) for name, s in sets.items()}
  logging.info(
    'Train: %d real + %d synthetic images',
    int(np.sum(~sets['train'].synthetic)),
    int(np.sum(sets['train'].synthetic)),
  )
  counts = np.bincount(splits['train'][1], minlength=len(config.class_names))
  logging.info('Train images per class %s', dict(zip(config.class_names, counts.tolist())))
  if len(splits['train'][1]) < config.batch_size:
    raise ValueError(
      f'Only {len(splits["train"][1])} training images for batch size {config.batch_size}.'
    )
  model = make_model(config)
  t0 = time.time()
  params, best_step, history = _fit(
    config, model, splits['train'], splits['validation'], _class_weights(counts, config.balance)
  )
  metrics = {
    'best_step': best_step,
    'train_seconds': time.time() - t0,
    'train_class_counts': counts.tolist(),
    'history': history,
    'config': config.to_dict(),
  }
  for name in ('validation', 'test'):
    images, labels = splits[name]
    logits, _ = inference.batched_forward(model, params, images, config.resolution)
    metrics[name] = classification_metrics(
      labels, logits.argmax(-1), config.class_names, probabilities=jax.nn.softmax(logits)
    )
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(workdir / inference.CHECKPOINT_DIR, {'params': params}, force=True)
    ckptr.wait_until_finished()
  files.write_json(workdir / inference.CONFIG_FILE, config.to_dict())
  files.write_json(workdir / inference.METRICS_FILE, metrics)
  return metrics
