"""One process of a multi-process training run, for tests/test_multihost.py.

  CXRGAN_COORDINATOR=localhost:PORT CXRGAN_NUM_PROCESSES=2 CXRGAN_PROCESS_ID=i \
    python tests/multihost_worker.py WORKDIR OUT_DIR '{"batch_size": 8, ...}'

Joins the run exactly as main.py does (parallel.initialize_distributed), trains
configs/demo.py with the JSON overrides by train.train_and_evaluate, then
writes the state this process holds at the end to OUT_DIR/process_<i>.npz
(flattened leaves, in tree order) so the test can compare processes.
"""

import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import logging  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import demo  # noqa: E402
from cxrgan_jax import parallel  # noqa: E402


def config_from(overrides: dict):
  config = demo.get_config()
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split('.')
    for name in parents:
      node = node[name]
    node[leaf] = value
  return config


def state_leaves(state) -> dict[str, np.ndarray]:
  flat = jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in flat}


def run(workdir: str, out_dir: str, overrides: dict) -> None:
  parallel.initialize_distributed()
  from cxrgan_jax import train  # pylint: disable=g-import-not-at-top

  logging.use_absl_handler()  # As app.run would: the test reads 'Resumed from step'.
  logging.set_verbosity(logging.INFO)
  state = train.train_and_evaluate(config_from(overrides), workdir)
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  np.savez(out / f'process_{jax.process_index()}.npz', **state_leaves(state))


if __name__ == '__main__':
  run(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
