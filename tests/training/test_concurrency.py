import subprocess
import sys

from calpipe.training import db as D

from support.report_rows import products_of, write_report

SCRIPT = """
import sys
from calpipe.training import db as D, ingest as I
with D.TrainingDB(sys.argv[1]) as database:
    for report in sys.argv[2:]:
        I.ingest(database, *I.read_report(report), source=report)
"""


def test_two_ingests_at_once_lose_and_duplicate_nothing(db_url, tmp_path):
    l1, names = products_of(30)
    from support.report_rows import l3_row

    # Overlapping halves, split into several reports each, run by two processes at once.
    a = [write_report(tmp_path / f"a{i}.csv", l1[i * 10:(i + 1) * 10] + [l3_row(n, 7) for n in names[:20]])
         for i in range(5)]
    b = [write_report(tmp_path / f"b{i}.csv", l1[20 + i * 10:30 + i * 10] + [l3_row(n, 7) for n in names[10:]])
         for i in range(4)]
    D.TrainingDB(db_url).close()
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, db_url, *map(str, files)]) for files in (a, b)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with D.TrainingDB(db_url) as database:
        counts = database.counts()
        assert counts["exposures"] == 60 and counts["products"] == 30
        assert counts["training"] == 30 and counts["pending"] == 0
        assert counts["ingest_runs"] == 9
        assert database.encoding_table()["filter"] == {"F200W": 1}
