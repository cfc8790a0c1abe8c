"""GAN objectives on discriminator logits (pre-sigmoid), batch-averaged.

With D(x) = sigmoid(l), log D(x) = -softplus(-l) and log(1 - D(x)) =
-softplus(l); writing the losses with softplus keeps them finite and their
gradients exact for logits of any size, where log(sigmoid(l)) underflows.
"""

import jax
import jax.numpy as jnp

LOSSES = ('minimax', 'non_saturating', 'hinge')


def _check(kind: str) -> None:
  if kind not in LOSSES:
    raise ValueError(
      f'config.loss={kind!r} is unknown; use one of {", ".join(repr(k) for k in LOSSES)}'
    )


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array, kind: str) -> jax.Array:
  """D's loss (to minimise); real_logits [B], fake_logits [B'] -> f32 scalar.

  'minimax' and 'non_saturating' share D's objective, the negated value function
  of Goodfellow et al. 2014 (eq. 1): -E[log D(x)] - E[log(1 - D(G(z)))]; at
  the equilibrium (p_g = p_data, so D = 1/2 everywhere) it equals 2 log 2.
  'hinge' (Lim & Ye 2017; Miyato et al. 2018): E[max(0, 1 - l_real)] +
  E[max(0, 1 + l_fake)].
  """
  _check(kind)
  real = real_logits.astype(jnp.float32)
  fake = fake_logits.astype(jnp.float32)
  if kind == 'hinge':
    return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
  return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))


def generator_loss(fake_logits: jax.Array, kind: str) -> jax.Array:
  """G's loss (to minimise); fake_logits [B] -> f32 scalar.

  'minimax': E[log(1 - D(G(z)))] (Goodfellow et al. 2014, eq. 1); its gradient
  vanishes when D confidently rejects samples, i.e. early in training.
  'non_saturating': -E[log D(G(z))] (Goodfellow et al. 2014, §3), the same
  fixed point with strong early gradients.
  'hinge': -E[l_fake] (Lim & Ye 2017; Miyato et al. 2018).
  """
  _check(kind)
  fake = fake_logits.astype(jnp.float32)
  if kind == 'minimax':
    return -jnp.mean(jax.nn.softplus(fake))
  if kind == 'non_saturating':
    return jnp.mean(jax.nn.softplus(-fake))
  return -jnp.mean(fake)
