"""Metadata columns generated from the datamodel schemas."""

import shutil

import yaml

from calpipe.archive.schema import FILE_TYPES, SchemaSet, columns_for, file_name, split_name


def test_image_columns_follow_refs_and_allof():
    columns = {c.name: c for c in columns_for()["cal"]}
    # exposure_meta via allOf + $ref, wcsinfo via a $ref into wcs_meta's definitions
    assert columns["instrument_detector"].keys == ("instrument", "detector")
    assert columns["exposure_nresultants"].kind == "integer"
    assert columns["exposure_frame_time"].kind == "number"
    assert columns["wcsinfo_s_region"].kind == "string"
    # Arrays, tagged objects (the gwcs) and objects without declared properties have no column.
    assert not {"exposure_read_pattern", "wcs", "cal_logs", "cal_step", "observation"} & set(columns)


def test_every_schema_file_type_has_columns_and_names_round_trip():
    columns = columns_for()
    assert set(columns) == {t for t, schema in FILE_TYPES.items() if schema}
    for file_type in FILE_TYPES:
        assert split_name(file_name("cp00001001001_0001_wfi01", file_type)) == ("cp00001001001_0001_wfi01", file_type)
    assert split_name("notes.txt") is None and split_name("_cal.asdf") is None


def test_a_keyword_added_to_a_schema_becomes_a_column(tmp_path):
    shutil.copytree(SchemaSet().folder, tmp_path / "schemas")
    path = tmp_path / "schemas" / "exposure_meta-1.0.0.yaml"
    schema = yaml.safe_load(path.read_text())
    schema["properties"]["exposure"]["properties"]["readout_mode"] = {"type": "string"}
    path.write_text("%YAML 1.1\n---\n" + yaml.safe_dump(schema, sort_keys=False) + "...\n")
    after = {c.name for c in columns_for(tmp_path / "schemas")["uncal"]}
    before = {c.name for c in columns_for()["uncal"]}
    assert after - before == {"exposure_readout_mode"}
