"""The committed study results are what the code renders from them.

Every GAN study folder in studies/ holds only results.json, report.md, the
figures and study_config.json; re-rendering it from those files alone must
give back the same report and results, so a reader can trust that the
tables in the reports (and the README's Results, taken from them) follow
from the committed numbers.
"""

import json
import shutil

from conftest import PROJECT_ROOT
import ml_collections
import pytest

from cxrgan_jax.study import pipeline
from cxrgan_jax.study import spec

GAN_STUDIES = sorted(
  p.parent.name
  for p in (PROJECT_ROOT / 'studies').glob('*/study_config.json')
  if json.loads(p.read_text()).get('kind', 'gan') == 'gan'
)


@pytest.mark.slow
@pytest.mark.parametrize('name', GAN_STUDIES)
def test_committed_study_re_renders_unchanged(name, tmp_path):
  committed = PROJECT_ROOT / 'studies' / name
  folder = tmp_path / name
  shutil.copytree(committed, folder)
  study = ml_collections.ConfigDict(json.loads((folder / 'study_config.json').read_text()))
  pipeline.write_report(study, folder, spec.runs(study) + spec.peer_runs(study))
  for file in ('report.md', pipeline.RESULTS_FILE):
    assert (folder / file).read_text() == (committed / file).read_text(), file
  for figure in (committed / 'figures').iterdir():  # The sample figures are kept.
    assert (folder / 'figures' / figure.name).is_file()


def test_there_are_committed_studies():
  assert len(GAN_STUDIES) >= 6, GAN_STUDIES
