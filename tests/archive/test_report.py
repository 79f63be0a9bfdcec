"""The archive's HTML report, rendered in headless Chromium when one is installed."""

import re
import shutil
import subprocess

import numpy as np
import pytest
from support.archive_data import write_cal
from matplotlib.image import imread

from calpipe.archive import Archive
from calpipe.cli import main

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.fixture(scope="module")
def site(two_runs, tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    other = write_cal(base / "in", "cp00001002001_0001_wfi02", detector="WFI02", start="2027-07-01T00:00:00")
    with Archive(base / "arc") as archive:
        archive.add([two_runs.uncal, *sorted(two_runs.run1.iterdir())])
        archive.add([two_runs.uncal, *sorted(two_runs.run2.iterdir())])
        archive.add([other])
    assert main(["archive", "report", str(base / "arc"), "--out", str(base / "site")]) == 0
    return base / "site", two_runs.root


def test_index_and_product_pages(site):
    folder, root = site
    index = (folder / "index.html").read_text()
    assert index.count("<tr class='root'") == 2 and "data-detector='WFI02'" in index
    assert len(list((folder / "img").glob("*_thumb.png"))) == 2
    page = (folder / "products" / f"{root}.html").read_text()
    for heading in ("Steps", "Data quality", "Reference files", "Versions", "Inputs"):
        assert f"<h2>{heading}</h2>" in page
    assert page.count("<td>COMPLETE</td>") >= 10 and "calpipe_wfi01_dark.asdf" in page
    assert re.search(r"<td>1</td><td>True</td><td>False</td>", page) and \
        re.search(r"<td>2</td><td>False</td><td>True</td>", page)


def chromium(*args):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium)")
def test_rendered_in_chromium_with_every_image_loaded(site, tmp_path):
    folder, root = site
    for page, images in ((folder / "index.html", "2/2"), (folder / "products" / f"{root}.html", "1/1")):
        dom = chromium(f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
                       page.as_uri())
        assert f'data-images="{images}"' in dom.stdout, dom.stderr[-2000:]
        shot = tmp_path / f"{page.stem}.png"
        chromium(f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,900",
                 page.as_uri())
        pixels = imread(shot)[..., :3]
        assert pixels.shape[:2] == (900, 1200) and np.ptp(pixels) > 0.5
