"""The archive database: a schema that gains a keyword migrates the metadata tables."""

import shutil

import sqlalchemy as sa
import yaml
from support.archive_data import write_cal

from calpipe.archive import Archive
from calpipe.archive.schema import SchemaSet


def grown_schemas(folder):
    """calpipe's schemas with ``meta.exposure.readout_mode`` (a string) declared."""
    shutil.copytree(SchemaSet().folder, folder)
    path = folder / "exposure_meta-1.0.0.yaml"
    schema = yaml.safe_load(path.read_text())
    schema["properties"]["exposure"]["properties"]["readout_mode"] = {"type": "string"}
    path.write_text("%YAML 1.1\n---\n" + yaml.safe_dump(schema, sort_keys=False) + "...\n")
    return folder


def meta_cal(archive):
    with archive.db.engine.connect() as conn:
        columns = [c["name"] for c in sa.inspect(conn).get_columns("meta_cal")]
        rows = conn.execute(sa.text("SELECT * FROM meta_cal ORDER BY dataset_id")).mappings().all()
    return columns, [dict(r) for r in rows]


def test_a_schema_keyword_added_becomes_a_backfilled_column(tmp_path, db_url):
    files = [
        write_cal(tmp_path / "in", "cp00001001001_0001_wfi01", extra_exposure={"readout_mode": "FAST"}),
        write_cal(tmp_path / "in", "cp00001001001_0002_wfi01", seed=1),  # written before the keyword existed
    ]
    folder = tmp_path / "arc"
    with Archive(folder, db_url) as archive:
        archive.add(files, previews=False)
        columns, before = meta_cal(archive)
    assert "exposure_readout_mode" not in columns and len(before) == 2

    with Archive(folder, db_url, schema_dir=grown_schemas(tmp_path / "schemas")) as archive:
        columns, after = meta_cal(archive)
        assert columns[-1] == "exposure_readout_mode"
        assert [r["exposure_readout_mode"] for r in after] == ["FAST", None]
        assert [{k: v for k, v in r.items() if k != "exposure_readout_mode"} for r in after] == before
        (migration,) = [m for m in archive.db.migrations() if m["action"] == "add_column" and
                        m["table_name"] == "meta_cal"]
        assert migration["keyword"] == "meta.exposure.readout_mode" and migration["backfilled"] == 1
        # New products fill the column as they arrive.
        archive.add([write_cal(tmp_path / "new", "cp00001001001_0003_wfi01", extra_exposure={"readout_mode": "SLOW"})],
                    previews=False)
        assert meta_cal(archive)[1][-1]["exposure_readout_mode"] == "SLOW"
    # The next open finds nothing to do: no new migrations.
    with Archive(folder, db_url, schema_dir=tmp_path / "schemas") as archive:
        assert len([m for m in archive.db.migrations() if m["action"] == "add_column"]) == 6  # one per type
