"""The committed study results are what the code makes of them.

Every GAN study folder in studies/ holds only results.json, report.md, the
figures, study_config.json and reference.json (the real-image floor). Summarising it again from results.json alone
must give back the same results.json and the same report text (the figures
are drawn by the re-render tests of test_study_report), so a reader can
trust that the reports' tables, and the README's Results taken from them,
follow from the committed numbers.
"""

import json

from conftest import PROJECT_ROOT
import ml_collections
import pytest

from cxrgan_jax.study import pipeline
from cxrgan_jax.study import report
from cxrgan_jax.study import spec

GAN_STUDIES = sorted(
  p.parent.name
  for p in (PROJECT_ROOT / 'studies').glob('*/study_config.json')
  if json.loads(p.read_text()).get('kind', 'gan') == 'gan'
)


@pytest.mark.parametrize('name', GAN_STUDIES)
def test_committed_study_summarises_to_its_own_results_and_report(name, tmp_path):
  folder = PROJECT_ROOT / 'studies' / name
  study = ml_collections.ConfigDict(json.loads((folder / 'study_config.json').read_text()))
  records, summary, results_only = pipeline.summarize(
    study, folder, spec.runs(study) + spec.peer_runs(study)
  )
  assert results_only
  report.write_results(tmp_path / 'results.json', records, summary)
  assert (tmp_path / 'results.json').read_text() == (folder / 'results.json').read_text()
  tables = report.markdown(study, summary, records, figures={})
  committed = (folder / 'report.md').read_text()
  assert committed.startswith(tables.split('\n## Figures')[0] + '\n## Figures')
  for figure in committed.split('](figures/')[1:]:
    assert (folder / 'figures' / figure.split(')')[0]).is_file(), figure


def test_there_are_committed_studies():
  assert len(GAN_STUDIES) >= 6, GAN_STUDIES
