"""Tests of the cost model: it reads the template as CloudFormation does, its arithmetic follows
the lifecycle, and the DESIGN.md check fails on a table that differs.

    .venv/bin/python -m pytest docs/cost -q -p no:cacheprovider
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import model  # noqa: E402

REPO = HERE.parent.parent


class _Loader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, …) as plain values."""


def _any_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_Loader.add_multi_constructor("!", _any_tag)


@pytest.fixture(scope="module")
def template():
    return yaml.load((REPO / "infra" / "template.yaml").read_text(), Loader=_Loader)


@pytest.fixture(scope="module")
def inputs():
    return model.build_inputs()


def test_template_figures_match_a_yaml_parser(template, inputs):
    t = inputs.template
    params, res = template["Parameters"], template["Resources"]
    assert t.raw_transition_days == params["RawTransitionDays"]["Default"]
    assert t.raw_retention_days == params["RawRetentionDays"]["Default"]
    assert t.preprocess_memory_mb == params["PreprocessMemoryMB"]["Default"]
    assert t.architecture == params["LambdaArchitecture"]["Default"]
    assert t.log_retention_days == params["LogRetentionDays"]["Default"]
    assert t.ingest_memory_mb == res["IngestFunction"]["Properties"]["MemorySize"]
    assert t.preprocess_tmp_mb == res["PreprocessFunction"]["Properties"]["EphemeralStorage"]["Size"]
    rule = next(r for r in res["RawBucket"]["Properties"]["LifecycleConfiguration"]["Rules"] if r["Id"] == "raw-to-glacier-ir")
    assert t.raw_transition_class == rule["Transitions"][0]["StorageClass"]
    assert t.alarms == sum(1 for r in res.values() if r["Type"] == "AWS::CloudWatch::Alarm")
    assert t.has_vpc_endpoint == any(r["Type"] == "AWS::EC2::VPCEndpoint" for r in res.values())


def test_raw_storage_follows_the_lifecycle(inputs):
    y1, y2 = model.month_lines(inputs, 1, 1), model.month_lines(inputs, 1, 2)
    cold = f"S3 raw, {inputs.template.raw_transition_class} (locked, grows)"
    # Standard holds only the last transition-days of uploads: the same every year.
    assert y1["S3 raw, Standard"] == pytest.approx(y2["S3 raw, Standard"])
    # The cold class grows by one year of sessions a year (nothing expires).
    year_gib = 10 * 365 * inputs.measured["session_bytes"] / model.GIB
    assert y2[cold] - y1[cold] == pytest.approx(year_gib * inputs.price("s3_glacier_ir_gb_month"), rel=0.01)


def test_polling_follows_what_moves_not_the_age_of_the_folder(inputs):
    y1 = model.polling_rru(inputs, 1, 3650, stuck=False)
    y5 = model.polling_rru(inputs, 1, 5 * 3650, stuck=False)
    stuck = model.polling_rru(inputs, 1, 3650, stuck=True)
    # Only the one full reading at each app start grows with the folder.
    starts = inputs.figure("app_starts_per_day") * model.DAYS_PER_MONTH
    assert y5 - y1 == pytest.approx(starts * 4 * 3650 * 0.5)
    # A stuck session is read every MAX_INTERVAL, no more.
    assert stuck - y1 == pytest.approx(model.SECONDS_PER_MONTH / inputs.polling.max_s * 0.5)


def test_reading_a_session_costs_half_a_read_unit_per_item(inputs):
    measured = inputs.measured["status_polling"]["items_read_per_month"]
    rru = model.polling_rru(inputs, 1, 0, stuck=False)
    assert rru == pytest.approx(measured * 0.5)


def test_the_design_check_fails_on_a_changed_table(tmp_path, inputs):
    design = (REPO / "docs" / "DESIGN.md").read_text()
    copy_ = tmp_path / "DESIGN.md"
    copy_.write_text(design)
    assert model.main(["--check", str(copy_)]) == 0
    a, b = model.block(design)
    changed = design[:a] + design[a:b].replace("| **total** |", "| **total (edited)** |", 1) + design[b:]
    copy_.write_text(changed)
    assert model.main(["--check", str(copy_)]) == 1
    assert model.main(["--write", str(copy_)]) == 0
    assert copy_.read_text() == design


def test_every_price_names_its_source_and_dates(inputs):
    for key, entry in inputs.prices.items():
        if key.startswith("_"):
            continue
        assert entry["source"].startswith("http"), key
        assert entry["checked"], key
        assert "usd" in entry and "unit" in entry, key


def test_a_higher_price_raises_the_total(inputs):
    dearer = copy.copy(inputs)
    dearer.prices = json.loads(json.dumps(inputs.prices))
    dearer.prices["s3_glacier_ir_gb_month"]["usd"] *= 2
    assert sum(model.month_lines(dearer, 1, 5).values()) > sum(model.month_lines(inputs, 1, 5).values())
