"""Pure, pmapped GAN train step: k discriminator updates, then one generator update.

Randomness is keyed by *global example index* (fold_in of the per-step key with
the example's position in the global batch), not by device, so a step on two
devices equals the same step on one device with the same global batch.
"""

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from cxrgan_jax import augment
from cxrgan_jax import losses
from cxrgan_jax import parallel
from cxrgan_jax.state import TrainState

PyTree = Any
AXIS = parallel.AXIS


def apply_model(
  module: nn.Module, params: PyTree, state: PyTree, x: jax.Array, *, train: bool
) -> tuple[jax.Array, PyTree]:
  """Applies a module and returns (output, updated non-trainable state)."""
  variables = {'params': params, **state}
  if train and state:
    out, new_state = module.apply(variables, x, train=True, mutable=list(state))
    return out, dict(new_state)
  return module.apply(variables, x, train=train), state


def global_example_keys(key: jax.Array, local_batch: int) -> jax.Array:
  """One key per example, indexed by its position in the global batch."""
  start = jax.lax.axis_index(AXIS) * local_batch
  return jax.vmap(jax.random.fold_in, (None, 0))(key, start + jnp.arange(local_batch))


def sample_latents(key: jax.Array, local_batch: int, latent_dim: int) -> jax.Array:
  keys = global_example_keys(key, local_batch)
  return jax.vmap(lambda k: jax.random.normal(k, (latent_dim,)))(keys)


def d_update_keys(step_key: jax.Array, index: int) -> tuple[jax.Array, jax.Array]:
  """(latent key, discriminator key) of D update `index` of a step; the G update reuses the last."""
  return tuple(jax.random.split(jax.random.fold_in(step_key, index)))


def tree_norm(tree: PyTree) -> jax.Array:
  return optax.global_norm(tree)


def ema_decay_at(step: jax.Array, decay: float) -> jax.Array:
  """EMA decay with a short warm-up, so early averages are not stuck at init."""
  step = step.astype(jnp.float32)
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def make_train_step(
  config: ml_collections.ConfigDict,
  generator: nn.Module,
  discriminator: nn.Module,
  g_tx: optax.GradientTransformation,
  d_tx: optax.GradientTransformation,
  *,
  apply_r1: bool,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """Returns train_step(state, batch) -> (state, metrics), to run under pmap(axis_name='batch').

  `apply_r1` is static: lazy R1 uses two compiled steps, chosen on the host
  (see `make_pmapped_steps`), because a `lax.cond` around the double-backprop
  made every step ~10x slower on XLA's CPU backend (measured).

  batch['image']: float32 [d_steps, local_batch, R, R, 1] in [-1, 1]; one real
  minibatch per discriminator update (Goodfellow et al. 2014, Algorithm 1).
  """
  policy = augment.parse_policy(config.augment.policy)
  latent_dim = config.latent_dim
  noise_std0 = float(config.instance_noise.std)
  noise_steps = max(1, int(config.instance_noise.anneal_steps))
  r1_gamma = float(config.r1_gamma) if apply_r1 else 0.0
  r1_interval = max(1, int(config.r1_interval))
  ada = config.augment

  def prepare_for_d(key, images, p, noise_std):
    """Augmentation (same ops for real and fake) then annealed instance noise."""
    aug_key, noise_key = jax.random.split(key)
    keys = global_example_keys(aug_key, images.shape[0])
    if policy:
      images = jax.vmap(lambda k, x: augment.augment(k, x[None], p=p, policy=policy)[0])(
        keys, images
      )
    if noise_std0 > 0:
      keys = global_example_keys(noise_key, images.shape[0])
      noise = jax.vmap(lambda k: jax.random.normal(k, images.shape[1:]))(keys)
      images = images + noise_std * noise
    return images

  def d_loss_fn(d_params, d_state, real, fake, key, p, noise_std):
    real_key, fake_key = jax.random.split(key)
    real_in = prepare_for_d(real_key, real, p, noise_std)
    fake_in = prepare_for_d(fake_key, fake, p, noise_std)

    def real_logit_sum(x):
      logits, new_state = apply_model(discriminator, d_params, d_state, x, train=True)
      return logits.sum(), (logits, new_state)

    if r1_gamma > 0:
      (_, (real_logits, d_state)), x_grad = jax.value_and_grad(real_logit_sum, has_aux=True)(
        real_in
      )
      r1 = jnp.mean(jnp.sum(jnp.square(x_grad), axis=(1, 2, 3)))
    else:
      (real_logits, d_state), r1 = real_logit_sum(real_in)[1], jnp.zeros((), jnp.float32)
    fake_logits, d_state = apply_model(discriminator, d_params, d_state, fake_in, train=True)
    adv = losses.discriminator_loss(real_logits, fake_logits, config.loss)
    # Lazy regularisation (Karras et al. 2020b): apply every r1_interval steps, scaled up.
    loss = adv + 0.5 * r1_gamma * r1_interval * r1
    return loss, (adv, r1, real_logits, fake_logits, d_state)

  def g_loss_on_fake(fake, d_params, d_state, key, p, noise_std):
    """G's loss as a function of its images; D's BatchNorm state is updated as in PyTorch."""
    fake_in = prepare_for_d(key, fake, p, noise_std)
    logits, d_state = apply_model(discriminator, d_params, d_state, fake_in, train=True)
    return losses.generator_loss(logits, config.loss), d_state

  def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    step_key = jax.random.fold_in(state.rng, state.step)
    real_batches = batch['image']
    local_batch = real_batches.shape[1]
    p = state.augment_p
    progress = state.step.astype(jnp.float32) / noise_steps
    noise_std = noise_std0 * jnp.maximum(0.0, 1.0 - progress)

    def generate(g_params, z):
      return apply_model(generator, g_params, state.g_state, z, train=True)

    def d_update(carry, real, fake, d_key):
      d_params, d_state, d_opt_state = carry
      grad_fn = jax.value_and_grad(d_loss_fn, has_aux=True)
      (loss, (adv, r1, real_logits, fake_logits, d_state)), grads = grad_fn(
        d_params, d_state, real, jax.lax.stop_gradient(fake), d_key, p, noise_std
      )
      grads = jax.lax.pmean(grads, AXIS)
      d_state = jax.lax.pmean(d_state, AXIS)
      updates, d_opt_state = d_tx.update(grads, d_opt_state, d_params)
      d_params = optax.apply_updates(d_params, updates)
      out = dict(
        d_loss=adv,
        r1=r1,
        d_real=jax.nn.sigmoid(real_logits).mean(),
        d_fake=jax.nn.sigmoid(fake_logits).mean(),
        real_sign=jnp.sign(real_logits).mean(),
        d_grad_norm=tree_norm(grads),
        d_total_loss=loss,
      )
      return (d_params, d_state, d_opt_state), out

    # A Python loop, not lax.scan: XLA's CPU backend runs the strided-conv
    # gradients inside a while loop several times slower (measured), and
    # d_steps is a small constant. G does not change during the D updates, so
    # the last update's fakes are exactly what G would make for the G update:
    # as in PyTorch's DCGAN example, G runs forward once per D update and the
    # G update back-propagates through the last forward (jax.vjp), with the
    # same latents, instead of a second forward on fresh latents.
    carry = (state.d_params, state.d_state, state.d_opt_state)
    num_d = real_batches.shape[0]
    for index in range(num_d):
      z_key, d_key = d_update_keys(step_key, index)
      z = sample_latents(z_key, local_batch, latent_dim)
      if index < num_d - 1:
        fake, _ = generate(state.g_params, z)
      else:
        fake, g_vjp, g_state = jax.vjp(
          functools.partial(generate, z=z), state.g_params, has_aux=True
        )
      carry, d_out = d_update(carry, real_batches[index], fake, d_key)
    d_params, d_state, d_opt_state = carry  # d_out: the last D update.

    aug_key = jax.random.fold_in(step_key, num_d)
    (g_loss, d_state), fake_grad = jax.value_and_grad(g_loss_on_fake, has_aux=True)(
      fake, d_params, d_state, aug_key, p, noise_std
    )
    (g_grads,) = g_vjp(fake_grad)
    g_grads = jax.lax.pmean(g_grads, AXIS)
    g_state = jax.lax.pmean(g_state, AXIS)
    d_state = jax.lax.pmean(d_state, AXIS)
    updates, g_opt_state = g_tx.update(g_grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)

    if config.ema_decay > 0:
      decay = ema_decay_at(state.step, config.ema_decay)
      ema_params = jax.tree.map(
        lambda e, g: decay * e + (1.0 - decay) * g, state.ema_params, g_params
      )
    else:
      ema_params = g_params

    # Adaptive augmentation: nudge p towards r_t = E[sign(D(real))] == target.
    real_sign = jax.lax.pmean(d_out['real_sign'], AXIS)
    ada_sum, ada_count, new_p = state.ada_sum + real_sign, state.ada_count + 1.0, p
    if policy and ada.adaptive:
      update_now = ada_count >= ada.interval
      r_t = ada_sum / ada_count
      delta = jnp.sign(r_t - ada.target) * config.batch_size * ada_count / ada.adjust_images
      new_p = jnp.where(update_now, jnp.clip(p + delta, 0.0, 1.0), p)
      ada_sum = jnp.where(update_now, 0.0, ada_sum)
      ada_count = jnp.where(update_now, 0.0, ada_count)

    metrics = dict(
      d_out,
      g_loss=g_loss,
      g_grad_norm=tree_norm(g_grads),
      g_param_norm=tree_norm(g_params),
      d_param_norm=tree_norm(d_params),
      g_update_norm=tree_norm(updates),
      augment_p=p,
      instance_noise_std=noise_std,
    )
    metrics = jax.lax.pmean(metrics, AXIS)
    finite = jnp.all(jnp.stack([jnp.isfinite(v) for v in jax.tree.leaves(metrics)]))
    metrics['finite'] = finite.astype(jnp.float32)

    new_state = state.replace(
      step=state.step + 1,
      g_params=g_params,
      g_state=g_state,
      d_params=d_params,
      d_state=d_state,
      g_opt_state=g_opt_state,
      d_opt_state=d_opt_state,
      ema_params=ema_params,
      augment_p=new_p,
      ada_sum=ada_sum,
      ada_count=ada_count,
    )
    # A non-finite step leaves the state untouched; the host loop then stops.
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
    return new_state, metrics

  return train_step


def pmap_train_step(train_step, devices=None):
  """pmap over `devices`, donating the state.

  The default, None, maps over every device of every process: under
  jax.distributed each process passes arrays over its local devices, and the
  step's pmeans (and `lax.axis_index`, so the example keys) span all of them.
  """
  return jax.pmap(train_step, axis_name=AXIS, donate_argnums=(0,), devices=devices)


def make_pmapped_steps(
  config: ml_collections.ConfigDict,
  generator: nn.Module,
  discriminator: nn.Module,
  g_tx: optax.GradientTransformation,
  d_tx: optax.GradientTransformation,
  devices=None,
) -> Callable[[int], Callable]:
  """Returns step_fn_for(step): the pmapped step to run on state.step == step.

  Lazy R1 (Karras et al. 2020b): the regularised step runs when
  step % config.r1_interval == 0, the plain one otherwise; each compiles once.
  """

  def build(apply_r1):
    return pmap_train_step(
      make_train_step(config, generator, discriminator, g_tx, d_tx, apply_r1=apply_r1), devices
    )

  if config.r1_gamma <= 0 or config.r1_interval == 1:
    only = build(config.r1_gamma > 0)
    return lambda step: only
  regularised, plain = build(True), build(False)
  return lambda step: regularised if step % config.r1_interval == 0 else plain
