"""The one pytree that holds everything a GAN run changes, and its optimisers."""

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from cxrgan_jax import models

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; a checkpoint is exactly this.

  `rng` is the run's base key; step functions derive per-step and per-example
  keys from it with `fold_in`, so it never changes and resuming reproduces the
  same randomness. `g_state`/`d_state` hold non-trainable collections
  ('batch_stats': BatchNorm statistics, spectral-norm vectors), possibly empty.
  `ada_sum`/`ada_count` accumulate sign(D(real)) between updates of the
  adaptive augmentation probability `augment_p` (Karras et al. 2020).
  """

  step: jax.Array  # int32 []
  rng: jax.Array  # uint32 [2] (raw PRNGKey, serialisable)
  g_params: PyTree
  g_state: PyTree
  d_params: PyTree
  d_state: PyTree
  g_opt_state: PyTree
  d_opt_state: PyTree
  ema_params: PyTree
  augment_p: jax.Array  # float32 []
  ada_sum: jax.Array  # float32 []
  ada_count: jax.Array  # float32 []


def learning_rate(
  opt_config: ml_collections.ConfigDict,
  *,
  num_updates: int = 0,
  cooldown_fraction: float = 0.0,
) -> float | optax.Schedule:
  """The optimiser's step size: constant, or held and then decayed to 0.

  With `cooldown_fraction` f > 0 the rate is held for the first (1 - f) of
  `num_updates` and falls linearly to 0 over the rest (as in pix2pix and
  CycleGAN's training): a GAN's quality swings from step to step at a
  constant rate, and the decay lets a run settle before it stops.
  """
  lr = opt_config.learning_rate
  if not cooldown_fraction:
    return lr
  hold = int(round(num_updates * (1.0 - cooldown_fraction)))
  return optax.linear_schedule(
    init_value=lr, end_value=0.0, transition_steps=max(num_updates - hold, 1), transition_begin=hold
  )


def make_optimizer(
  opt_config: ml_collections.ConfigDict,
  grad_clip_norm: float,
  *,
  num_updates: int = 0,
  cooldown_fraction: float = 0.0,
) -> optax.GradientTransformation:
  """Adam (Kingma & Ba 2015) or momentum SGD, optionally after norm clipping.

  `num_updates`: how many times the optimiser will be applied over the run,
  which a cooldown (see learning_rate) needs.
  """
  lr = learning_rate(opt_config, num_updates=num_updates, cooldown_fraction=cooldown_fraction)
  if opt_config.name == 'adam':
    tx = optax.adam(lr, b1=opt_config.b1, b2=opt_config.b2)
  elif opt_config.name == 'sgd':
    tx = optax.sgd(lr, momentum=opt_config.momentum or None)
  else:
    raise ValueError(f'unknown optimizer name {opt_config.name!r}')
  if grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)
  return tx


def _split_variables(variables) -> tuple[PyTree, PyTree]:
  variables = flax.core.unfreeze(variables)
  params = variables.pop('params')
  return params, variables


def create_train_state(
  config: ml_collections.ConfigDict,
  generator: nn.Module,
  discriminator: nn.Module,
  g_tx: optax.GradientTransformation,
  d_tx: optax.GradientTransformation,
) -> TrainState:
  """Initialises both networks from `config.seed`; unreplicated, on host 0's default device."""
  rng = jax.random.PRNGKey(config.seed)
  g_key, d_key = jax.random.split(jax.random.fold_in(rng, 0x1D17))
  res = config.resolution
  z = jnp.zeros((2, config.latent_dim), jnp.float32)
  x = jnp.zeros((2, res, res, 1), jnp.float32)
  g_params, g_state = _split_variables(jax.jit(lambda k: generator.init(k, z, train=False))(g_key))
  d_params, d_state = _split_variables(
    jax.jit(lambda k: discriminator.init(k, x, train=False))(d_key)
  )
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    rng=rng,
    g_params=g_params,
    g_state=g_state,
    d_params=d_params,
    d_state=d_state,
    g_opt_state=g_tx.init(g_params),
    d_opt_state=d_tx.init(d_params),
    ema_params=jax.tree.map(jnp.copy, g_params),
    augment_p=jnp.asarray(config.augment.p, jnp.float32),
    ada_sum=jnp.zeros((), jnp.float32),
    ada_count=jnp.zeros((), jnp.float32),
  )


def build(config: ml_collections.ConfigDict, *, axis_name: str | None = None):
  """(generator, discriminator, g_tx, d_tx, fresh unreplicated state) for a config.

  `axis_name` is the pmap axis BatchNorm syncs over; parameters do not depend
  on it, so a state built without it restores a pmapped run's checkpoint.
  """
  generator, discriminator = models.create_models(config, axis_name=axis_name)
  cooldown = config.get('lr_cooldown_fraction', 0.0)
  steps = config.num_train_steps
  g_tx = make_optimizer(
    config.g_optimizer, config.grad_clip_norm, num_updates=steps, cooldown_fraction=cooldown
  )
  # D is updated d_steps times per step.
  d_tx = make_optimizer(
    config.d_optimizer,
    config.grad_clip_norm,
    num_updates=steps * config.d_steps,
    cooldown_fraction=cooldown,
  )
  state = create_train_state(config, generator, discriminator, g_tx, d_tx)
  return generator, discriminator, g_tx, d_tx, state
