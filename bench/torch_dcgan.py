"""PyTorch (CPU) reference of our DCGAN train step, for side-by-side timing.

Same layers and widths as `cxrgan_jax.models.dcgan` for a given resolution and
channel settings (the width schedule is imported from it), but written the
usual PyTorch way: `nn.ConvTranspose2d(k=4, s=2, p=1)` in G, `nn.Conv2d(k=4,
s=2, p=1)` in D. One step = one D update on real + fake (non-saturating loss,
Goodfellow et al. 2014) then one G update, each with Adam, as in the PyTorch
DCGAN example.

Needs the `bench` extra: `pip install torch==2.13.0`.

  python -m bench.torch_dcgan --resolution 64 --batch_size 64  # from the root
"""

import argparse
import math
import os
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cxrgan_jax.models import dcgan
from cxrgan_jax.models import layers


def _widths(channels: int, resolution: int) -> list[int]:
  """Widths at 4x4, 8x8, ..., resolution/2, as in the flax DCGAN."""
  doublings = int(math.log2(resolution // 4))
  return [layers.channels_at(channels, level, dcgan.MIN_CHANNELS) for level in range(doublings)]


def _init_dcgan(module: nn.Module) -> None:
  """N(0, 0.02) weights, BatchNorm gamma ~ N(1, 0.02) (Radford et al. 2015)."""
  if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
    nn.init.normal_(module.weight, 0.0, 0.02)
    if module.bias is not None:
      nn.init.zeros_(module.bias)
  elif isinstance(module, nn.BatchNorm2d):
    nn.init.normal_(module.weight, 1.0, 0.02)
    nn.init.zeros_(module.bias)


class Generator(nn.Module):
  """z [B, latent] -> [B, 1, R, R] in [-1, 1]."""

  def __init__(self, resolution: int, latent_dim: int, channels: int):
    super().__init__()
    widths = _widths(channels, resolution)
    self.width = widths[0]
    self.project = nn.Linear(latent_dim, 16 * widths[0], bias=False)
    blocks = [nn.BatchNorm2d(widths[0]), nn.ReLU()]
    for c_in, c_out in zip(widths[:-1], widths[1:]):
      blocks += [
        nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
      ]
    blocks += [nn.ConvTranspose2d(widths[-1], 1, 4, 2, 1), nn.Tanh()]
    self.body = nn.Sequential(*blocks)
    self.apply(_init_dcgan)

  def forward(self, z: torch.Tensor) -> torch.Tensor:
    return self.body(self.project(z).view(-1, self.width, 4, 4))


class Discriminator(nn.Module):
  """[B, 1, R, R] -> logits [B]."""

  def __init__(self, resolution: int, channels: int):
    super().__init__()
    widths = _widths(channels, resolution)[::-1]  # Highest resolution first.
    blocks = [nn.Conv2d(1, widths[0], 4, 2, 1), nn.LeakyReLU(0.2)]
    for c_in, c_out in zip(widths[:-1], widths[1:]):
      blocks += [
        nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2),
      ]
    self.body = nn.Sequential(*blocks)
    self.head = nn.Linear(16 * widths[-1], 1)
    self.apply(_init_dcgan)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.head(self.body(x).flatten(1))[:, 0]


def make_optimizers(
  g: nn.Module, d: nn.Module, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
  """Adam for G and D with the DCGAN example's settings (eps: PyTorch's 1e-8, as optax's)."""
  return (
    torch.optim.Adam(g.parameters(), lr=lr, betas=betas),
    torch.optim.Adam(d.parameters(), lr=lr, betas=betas),
  )


def train_step(
  g: nn.Module,
  d: nn.Module,
  g_opt: torch.optim.Optimizer,
  d_opt: torch.optim.Optimizer,
  real: torch.Tensor,
  z: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
  """One step of the PyTorch DCGAN example; returns (d_loss, g_loss), detached.

  G runs forward once: D updates on `real` and `fake.detach()` (two forward
  passes, so each batch has its own BatchNorm statistics), then G updates
  through the same `fake` scored by the updated D. The losses are the
  example's BCE written on logits (softplus): non-saturating for G.
  """
  fake = g(z)
  d_loss = F.softplus(-d(real)).mean() + F.softplus(d(fake.detach())).mean()
  d_opt.zero_grad(set_to_none=True)
  d_loss.backward()
  d_opt.step()
  g_loss = F.softplus(-d(fake)).mean()
  g_opt.zero_grad(set_to_none=True)
  g_loss.backward()
  g_opt.step()
  return d_loss.detach(), g_loss.detach()


def _numbered(tree: dict, prefix: str) -> list[str]:
  """Names `prefix_0, prefix_1, ...` in `tree`, in creation order."""
  names = [k for k in tree if k.rsplit('_', 1)[0] == prefix]
  return sorted(names, key=lambda k: int(k.rsplit('_', 1)[1]))


def state_dict_from_flax(module: nn.Module, params: dict, batch_stats: dict) -> dict:
  """The torch state_dict of `module` (Generator or Discriminator above) holding
  the flax DCGAN's variables, converted between layouts.

  Layouts: flax is NHWC with HWIO kernels, torch NCHW with OIHW (conv) or
  IOHW (transposed conv) weights. The flax transposed conv is
  `nn.ConvTranspose(..., 'SAME')` without kernel flipping, which equals
  torch's ConvTranspose2d(4, 2, 1) with the spatially flipped kernel. Dense
  layers next to a reshape also permute their (h, w, c) axis to torch's
  (c, h, w).
  """

  def t(x):
    return torch.tensor(np.ascontiguousarray(x, np.float32))

  dense = iter(_numbered(params, 'Dense'))
  convs = iter(_numbered(params, 'Conv') or _numbered(params, 'ConvTranspose4x4'))
  norms = iter(_numbered(params, 'BatchNorm'))
  out = {}
  for name, layer in module.named_modules():
    if isinstance(layer, nn.Linear):
      p = params[next(dense)]
      k = np.asarray(p['kernel'])
      if isinstance(module, Generator):  # z -> (h, w, c) -> torch's (c, h, w).
        c = layer.out_features // 16
        w = k.reshape(k.shape[0], 4, 4, c).transpose(3, 1, 2, 0).reshape(-1, k.shape[0])
      else:  # (h, w, c) features -> torch's (c, h, w) flatten.
        c = layer.in_features // 16
        w = k.reshape(4, 4, c, -1).transpose(3, 2, 0, 1).reshape(k.shape[1], -1)
    elif isinstance(layer, nn.ConvTranspose2d):
      p = params[next(convs)]
      w = np.asarray(p['kernel'])[::-1, ::-1].transpose(2, 3, 0, 1)
    elif isinstance(layer, nn.Conv2d):
      p = params[next(convs)]
      w = np.asarray(p['kernel']).transpose(3, 2, 0, 1)
    elif isinstance(layer, nn.BatchNorm2d):
      key = next(norms)
      p, stats = params[key], batch_stats[key]
      out[f'{name}.weight'], out[f'{name}.bias'] = t(p['scale']), t(p['bias'])
      out[f'{name}.running_mean'], out[f'{name}.running_var'] = t(stats['mean']), t(stats['var'])
      out[f'{name}.num_batches_tracked'] = module.state_dict()[f'{name}.num_batches_tracked']
      continue
    else:
      continue
    out[f'{name}.weight'] = t(w)
    if layer.bias is not None:
      out[f'{name}.bias'] = t(p['bias'])
  return out


def time_torch_dcgan_step(
  resolution: int,
  batch_size: int,
  latent_dim: int,
  g_channels: int,
  d_channels: int,
  steps: int,
  warmup: int,
) -> float:
  """Images per second of full GAN steps (D then G update), after `warmup`."""
  torch.set_num_threads(len(os.sched_getaffinity(0)))
  torch.manual_seed(0)
  g = Generator(resolution, latent_dim, g_channels)
  d = Discriminator(resolution, d_channels)
  g_opt, d_opt = make_optimizers(g, d)
  real = torch.rand(batch_size, 1, resolution, resolution) * 2.0 - 1.0

  def step():
    _, g_loss = train_step(g, d, g_opt, d_opt, real, torch.randn(batch_size, latent_dim))
    return g_loss.item()  # Waits for the step to finish.

  return images_per_second(step, batch_size, steps, warmup)


def images_per_second(step, batch_size: int, steps: int, warmup: int) -> float:
  """Images/s of `steps` calls of step() (each waits for its result) after `warmup`."""
  for _ in range(warmup):
    step()
  start = time.perf_counter()
  for _ in range(steps):
    step()
  return batch_size * steps / (time.perf_counter() - start)


def run_cli(time_fn, title: str, doc: str, **defaults) -> None:
  """The bench scripts' command line: model size flags -> one timing -> one line."""
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  sizes = dict(
    resolution=64, batch_size=64, latent_dim=128, g_channels=256, d_channels=256, steps=5, warmup=2
  )
  for name, value in {**sizes, **defaults}.items():
    parser.add_argument(f'--{name}', type=int, default=value)
  args = parser.parse_args()
  rate = time_fn(**vars(args))
  print(
    f'torch {torch.__version__} {title} {args.resolution}px batch {args.batch_size}: '
    f'{rate:.1f} images/s'
  )


if __name__ == '__main__':
  run_cli(time_torch_dcgan_step, 'DCGAN', __doc__)
