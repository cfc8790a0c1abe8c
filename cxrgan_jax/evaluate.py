r"""Evaluates generated chest X-rays against real ones; writes metrics + report.

  python -m cxrgan_jax.evaluate --workdir=RUN --num_samples=1000 \
      --dataset=chest_xray_pneumonia/normal --split=test --data_dir=TFDS \
      --features=cxr,pixels --classifier_workdir=CLF --output_dir=OUT

flags -> configs/eval.py -> `evaluation.suite.run`. Every field of
configs/eval.py is a flag `--config.FIELD` (or the shorthand `--FIELD`, see
cxrgan_jax/cli.py); the file documents them all. `--which=best` evaluates the
checkpoint that in-training evaluation kept. Started on every host of a
multi-host job (launch.sh's CXRGAN_* variables), process 0 evaluates and
writes the one output folder; the others exit.
"""

from absl import app

from cxrgan_jax import checkpoints
from cxrgan_jax import cli
from cxrgan_jax import parallel
from cxrgan_jax.evaluation import suite

CONFIG, ARGV = cli.define_config_flag('eval', 'Evaluation configuration file.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = CONFIG.value
  if index := parallel.launched_process_index():
    print(f'Process {index}: process 0 writes {config.output_dir}')
    return
  try:
    metrics = suite.run(config)
  except (checkpoints.CheckpointError, FileNotFoundError, ValueError) as e:
    raise app.UsageError(str(e)) from None
  width = max(len(k) for k in metrics)
  for key in sorted(metrics):
    print(f'{key:<{width}}  {metrics[key]:.6g}')
  print(f'Wrote {config.output_dir}/metrics.json and report.md')


if __name__ == '__main__':
  app.run(main, argv=ARGV)
