"""PyTorch (CPU) reference of our residual GAN train step, for side-by-side timing.

Same blocks and widths as `cxrgan_jax.models.resnet` (the width schedule is
imported from it), written the usual PyTorch way: nearest upsampling then a
3x3 conv in G's blocks, 3x3 convs then 2x2 average pooling in D's, no
normalisation in D. One step = one D update on real + fake (non-saturating
loss) with the R1 penalty on real images every `r1_interval` steps (lazy,
scaled by the interval, Karras et al. 2020b), then one G update on the same
fakes, then the EMA of G's weights, each with Adam(2e-4, 0.0, 0.99) as in
configs/base.py. No augmentation (the JAX side of the bench turns it off too).

Needs the `bench` extra: `pip install torch==2.13.0`.

  python -m bench.torch_resnet --resolution 128 --channels 128  # from the root
"""

import copy
import os

import torch
from torch import nn
from torch.nn import functional as F

from bench import torch_dcgan
from cxrgan_jax.models import layers
from cxrgan_jax.models import resnet


def _widths(channels: int, levels) -> list[int]:
  return [layers.channels_at(channels, level, resnet.MIN_CHANNELS) for level in levels]


class GBlock(nn.Module):
  """BN-ReLU-up-conv3x3-BN-ReLU-conv3x3 + up(conv1x1) shortcut."""

  def __init__(self, c_in: int, c_out: int):
    super().__init__()
    self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
    self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
    self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
    self.shortcut = nn.Conv2d(c_in, c_out, 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2, mode='nearest')
    h = self.conv2(F.relu(self.bn2(self.conv1(h))))
    return h + F.interpolate(self.shortcut(x), scale_factor=2, mode='nearest')


class DBlock(nn.Module):
  """(ReLU)-conv3x3-ReLU-conv3x3-avgpool + avgpool-(conv1x1) shortcut."""

  def __init__(self, c_in: int, c_out: int, preactivate: bool):
    super().__init__()
    self.preactivate = preactivate
    self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
    self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
    self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = F.relu(x) if self.preactivate else x
    h = F.avg_pool2d(self.conv2(F.relu(self.conv1(h))), 2)
    s = F.avg_pool2d(x, 2)
    return h + (self.shortcut(s) if self.shortcut is not None else s)


class Generator(nn.Module):
  """z [B, latent] -> [B, 1, R, R] in [-1, 1]."""

  def __init__(self, resolution: int, latent_dim: int, channels: int):
    super().__init__()
    doublings = layers.num_doublings(resolution)
    widths = [channels] + _widths(channels, range(1, doublings + 1))
    self.channels = channels
    self.project = nn.Linear(latent_dim, 16 * channels)
    self.blocks = nn.Sequential(*[GBlock(a, b) for a, b in zip(widths[:-1], widths[1:])])
    self.bn = nn.BatchNorm2d(widths[-1])
    self.out = nn.Conv2d(widths[-1], 1, 3, padding=1)

  def forward(self, z: torch.Tensor) -> torch.Tensor:
    h = self.blocks(self.project(z).view(-1, self.channels, 4, 4))
    return torch.tanh(self.out(F.relu(self.bn(h))))


class Discriminator(nn.Module):
  """[B, 1, R, R] -> logits [B]."""

  def __init__(self, resolution: int, channels: int):
    super().__init__()
    doublings = layers.num_doublings(resolution)
    widths = [1] + _widths(channels, reversed(range(doublings)))
    self.blocks = nn.Sequential(
      *[DBlock(a, b, preactivate=i > 0) for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))]
    )
    self.head = nn.Linear(widths[-1], 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.head(F.relu(self.blocks(x)).sum(dim=(2, 3)))[:, 0]


def time_torch_resnet_step(
  resolution: int,
  batch_size: int,
  latent_dim: int,
  g_channels: int,
  d_channels: int,
  steps: int,
  warmup: int,
  r1_gamma: float = 1.0,
  r1_interval: int = 4,
  ema_decay: float = 0.999,
) -> float:
  """Images per second of full GAN steps, timed from a step where R1 is due."""
  torch.set_num_threads(len(os.sched_getaffinity(0)))
  torch.manual_seed(0)
  g = Generator(resolution, latent_dim, g_channels)
  d = Discriminator(resolution, d_channels)
  g_ema = copy.deepcopy(g).requires_grad_(False)
  g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.0, 0.99))
  d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.0, 0.99))
  real = torch.rand(batch_size, 1, resolution, resolution) * 2.0 - 1.0
  count = 0

  def step():
    nonlocal count
    apply_r1 = r1_gamma > 0 and count % r1_interval == 0
    count += 1
    fake = g(torch.randn(batch_size, latent_dim))
    real_in = real.detach().requires_grad_(apply_r1)
    real_logits = d(real_in)
    d_loss = F.softplus(-real_logits).mean() + F.softplus(d(fake.detach())).mean()
    if apply_r1:
      (grad,) = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
      d_loss = d_loss + 0.5 * r1_gamma * r1_interval * grad.square().sum(dim=(1, 2, 3)).mean()
    d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    d_opt.step()
    g_loss = F.softplus(-d(fake)).mean()
    g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    g_opt.step()
    with torch.no_grad():
      for e, p in zip(g_ema.parameters(), g.parameters()):
        e.lerp_(p, 1.0 - ema_decay)
    return g_loss.detach().item()  # Waits for the step to finish.

  # Warm up to a multiple of the R1 interval, so timing starts on an R1 step.
  interval = r1_interval if r1_gamma > 0 else 1
  warmup = -(-max(warmup, 1) // interval) * interval
  return torch_dcgan.images_per_second(step, batch_size, steps, warmup)


if __name__ == '__main__':
  torch_dcgan.run_cli(
    time_torch_resnet_step, 'residual GAN', __doc__, resolution=128, steps=8, warmup=4
  )
