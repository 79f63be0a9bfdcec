import math

import numpy as np
import pytest
from astropy.io import fits
from support.pool_exposures import write_cp

from calpipe.associations.pool import PoolError, group_products, load_pool, read_exposure


def test_calpipe_exposure_metadata_with_missing_fields(tmp_path):
    p = write_cp(tmp_path / "cp00007002001_0001_wfi01_uncal.asdf", "WFI01",
                 wcsinfo={"ra_ref": 80.5, "dec_ref": -69.5, "roll_ref": 0.0, "v2_ref": 0.0, "v3_ref": 0.0},
                 target={"name": "LMC-1", "ra": 80.5, "dec": -69.5})
    rec = read_exposure(p)
    assert (rec["observatory"], rec["program"], rec["observtn"], rec["instrume"], rec["detector"]) == (
        "calpipe", 7, 2, "WFI", "WFI01")
    assert (rec["filter"], rec["exp_type"], rec["nresultants"], rec["targname"]) == ("F158", "WFI_IMAGE", 6, "LMC-1")
    assert rec["ra_ref"] == 80.5 and rec["pupil"] == "NONE" and rec["tsovisit"] is False
    assert rec["image_size_kb"] > 0
    # No wcsinfo and no target: pointing is NaN, target name NONE.
    q = write_cp(tmp_path / "cp00007002001_0001_wfi02_uncal.asdf", "WFI02")
    rec2 = read_exposure(q)
    assert math.isnan(rec2["ra_ref"]) and rec2["targname"] == "NONE"
    prods = group_products(load_pool(tmp_path))
    assert [p.name for p in prods] == ["cp00007-o002_t001_wfi_f158", "cp00007-o002_t002_wfi_f158"]


def test_jwst_uncal_headers(tmp_path):
    hdr = fits.Header()
    for k, v in dict(PROGRAM="01234", OBSERVTN="003", INSTRUME="NIRSPEC", DETECTOR="NRS1", FILTER="F290LP",
                     GRATING="G395H", EXP_TYPE="NRS_IFU", SUBARRAY="FULL", TARGNAME="M31", TARG_RA=10.68,
                     TARG_DEC=41.27, TSOVISIT=False, BKGDTARG=False, NEXPOSUR=4, GS_MAG=14.2).items():
        hdr[k] = v
    sci = fits.ImageHDU(np.zeros((2, 2), np.float32), name="SCI")
    sci.header["CRVAL1"], sci.header["CRVAL2"] = 10.7, 41.3  # no RA_REF: falls back to CRVAL
    p = tmp_path / "jw01234003001_02101_00001_nrs1_uncal.fits"
    fits.HDUList([fits.PrimaryHDU(header=hdr), sci]).writeto(p)
    rec = read_exposure(p)
    assert (rec["program"], rec["observtn"], rec["exp_type"], rec["pupil"]) == (1234, 3, "NRS_IFU", "NONE")
    assert (rec["ra_ref"], rec["dec_ref"], rec["nexposur"], rec["gs_mag"]) == (10.7, 41.3, 4, 14.2)
    assert [p.name for p in group_products([rec])] == ["jw01234-o003_t001_nirspec_g395h-f290lp"]


def test_unreadable_exposures(tmp_path):
    bad = tmp_path / "x_uncal.asdf"
    bad.write_text("not asdf")
    with pytest.raises(PoolError, match="cannot read ASDF metadata"):
        read_exposure(bad)
    with pytest.raises(PoolError, match="expected .asdf or .fits"):
        read_exposure(tmp_path / "x.txt")
