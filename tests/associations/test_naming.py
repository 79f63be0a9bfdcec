import json
import os
import subprocess
import sys

import pytest

from calpipe.associations.pool import group_products, normalise, associations_from_pool


def jw(name, **kw):
    base = dict(FILENAME=name, PROGRAM="01234", OBSERVTN="001", TARGNAME="NGC-1", INSTRUME="NIRCAM",
                DETECTOR="NRCA1", EXP_TYPE="NRC_IMAGE", SUBARRAY="FULL", RA_REF=10.0, DEC_REF=-5.0)
    base.update(kw)
    return normalise(base)


def names(exps):
    return [p.name for p in group_products(exps)]


@pytest.mark.parametrize(
    "kw, expected",
    [
        # NIRCam imaging: CLEAR pupil kept, elements sorted.
        (dict(FILTER="F090W", PUPIL="CLEAR"), "jw01234-o001_t001_nircam_clear-f090w"),
        (dict(FILTER="F444W", PUPIL="F470N"), "jw01234-o001_t001_nircam_f444w-f470n"),
        (dict(FILTER="F444W", PUPIL="F405N"), "jw01234-o001_t001_nircam_f405n-f444w"),
        # Missing pupil / filter.
        (dict(INSTRUME="MIRI", DETECTOR="MIRIMAGE", EXP_TYPE="MIR_IMAGE", FILTER="F770W", PUPIL="N/A"),
         "jw01234-o001_t001_miri_f770w"),
        (dict(INSTRUME="FGS", DETECTOR="GUIDER1", EXP_TYPE="FGS_IMAGE"), "jw01234-o001_t001_fgs_clear"),
        (dict(FILTER="NONE", PUPIL="F162M"), "jw01234-o001_t001_nircam_f162m"),
        # Subarray appended unless FULL.
        (dict(INSTRUME="MIRI", EXP_TYPE="MIR_IMAGE", FILTER="F1500W", SUBARRAY="BRIGHTSKY"),
         "jw01234-o001_t001_miri_f1500w-brightsky"),
        (dict(FILTER="F150W", PUPIL="CLEAR", SUBARRAY="SUB64P"), "jw01234-o001_t001_nircam_clear-f150w-sub64p"),
        # Coronagraphy and AMI.
        (dict(EXP_TYPE="NRC_CORON", FILTER="F335M", PUPIL="MASKRND", SUBARRAY="SUB320A335R"),
         "jw01234-o001_t001_nircam_f335m-maskrnd-sub320a335r"),
        (dict(INSTRUME="MIRI", EXP_TYPE="MIR_4QPM", FILTER="F1550C", SUBARRAY="MASK1550"),
         "jw01234-o001_t001_miri_f1550c-mask1550"),
        (dict(INSTRUME="NIRISS", EXP_TYPE="NIS_AMI", FILTER="F480M", PUPIL="NRM", SUBARRAY="SUB80"),
         "jw01234-o001_t001_niriss_f480m-nrm-sub80"),
        # Time series: grism, SOSS, NIRSpec bright object (prism, no slit).
        (dict(EXP_TYPE="NRC_TSGRISM", FILTER="F322W2", PUPIL="GRISMR", SUBARRAY="SUBGRISM256", TSOVISIT=True),
         "jw01234-o001_t001_nircam_f322w2-grismr-subgrism256"),
        (dict(INSTRUME="NIRISS", EXP_TYPE="NIS_SOSS", FILTER="CLEAR", PUPIL="GR700XD", SUBARRAY="SUBSTRIP256", TSOVISIT="T"),
         "jw01234-o001_t001_niriss_clear-gr700xd-substrip256"),
        (dict(INSTRUME="NIRSPEC", EXP_TYPE="NRS_BRIGHTOBJ", FILTER="CLEAR", GRATING="PRISM", FXD_SLIT="S1600A1", SUBARRAY="SUB512"),
         "jw01234-o001_t001_nirspec_clear-prism-sub512"),
        (dict(INSTRUME="MIRI", EXP_TYPE="MIR_LRS-SLITLESS", FILTER="P750L", SUBARRAY="SLITLESSPRISM", TSOVISIT=True),
         "jw01234-o001_t001_miri_p750l-slitlessprism"),
        # Spectroscopy: fixed slit (source-based, slit and subarray), MSA prism, IFU grating first.
        (dict(INSTRUME="NIRSPEC", EXP_TYPE="NRS_FIXEDSLIT", FILTER="F290LP", GRATING="G395H", FXD_SLIT="S200A1", SUBARRAY="SUBS200A1"),
         "jw01234-o001_{source_id}_nirspec_f290lp-g395h-s200a1-subs200a1"),
        (dict(INSTRUME="NIRSPEC", EXP_TYPE="NRS_MSASPEC", FILTER="CLEAR", GRATING="PRISM"),
         "jw01234-o001_{source_id}_nirspec_clear-prism"),
        (dict(INSTRUME="NIRSPEC", EXP_TYPE="NRS_IFU", FILTER="F290LP", GRATING="G395H"),
         "jw01234-o001_t001_nirspec_g395h-f290lp"),
        (dict(INSTRUME="NIRSPEC", EXP_TYPE="NRS_IFU", FILTER="CLEAR", GRATING="PRISM"),
         "jw01234-o001_t001_nirspec_prism-clear"),
        (dict(INSTRUME="MIRI", EXP_TYPE="MIR_LRS-FIXEDSLIT", FILTER="P750L"), "jw01234-o001_t001_miri_p750l"),
        # WFSS: source-based.
        (dict(EXP_TYPE="NRC_WFSS", FILTER="F356W", PUPIL="GRISMR"), "jw01234-o001_{source_id}_nircam_f356w-grismr"),
        (dict(INSTRUME="NIRISS", EXP_TYPE="NIS_WFSS", FILTER="GR150R", PUPIL="F140M"),
         "jw01234-o001_{source_id}_niriss_f140m-gr150r"),
    ],
)
def test_single_rule_names(kw, expected):
    assert names([jw("a_uncal.fits", **kw)]) == [expected]


def test_miri_mrs_channels_and_bands_union():
    exps = [
        jw("a_mirifushort_uncal.fits", INSTRUME="MIRI", DETECTOR="MIRIFUSHORT", EXP_TYPE="MIR_MRS", CHANNEL="12", BAND="SHORT"),
        jw("a_mirifulong_uncal.fits", INSTRUME="MIRI", DETECTOR="MIRIFULONG", EXP_TYPE="MIR_MRS", CHANNEL="34", BAND="SHORT"),
        jw("b_mirifushort_uncal.fits", INSTRUME="MIRI", DETECTOR="MIRIFUSHORT", EXP_TYPE="MIR_MRS", CHANNEL="12", BAND="LONG"),
        jw("c_mirifushort_uncal.fits", INSTRUME="MIRI", DETECTOR="MIRIFUSHORT", EXP_TYPE="MIR_MRS", CHANNEL="12", BAND="MEDIUM"),
    ]
    assert names(exps) == ["jw01234-o001_t001_miri_ch1-2-3-4-shortmediumlong"]
    assert names(exps[:1]) == ["jw01234-o001_t001_miri_ch1-2-short"]


def test_wavefront_sensing_one_product_per_detector():
    exps = [jw(f"w{i}_{d}_uncal.fits", DETECTOR=d.upper(), FILTER="F212N", PUPIL="WLP8", VISITYPE="PRIME_WFSC_SENSING_ONLY")
            for i in (1, 2) for d in ("nrca3", "nrcb4")]
    assert names(exps) == ["jw01234-o001_t001_nircam_f212n-wlp8-nrca3", "jw01234-o001_t001_nircam_f212n-wlp8-nrcb4"]
    assert [len(p.members) for p in group_products(exps)] == [2, 2]


def test_wfss_parallel_with_prime_imaging():
    # NIRCam prime imaging on a named target; NIRISS pure-parallel WFSS with no target name
    # and its direct image: the instruments make separate products.
    exps = [
        jw("p1_nrca1_uncal.fits", FILTER="F150W", PUPIL="CLEAR"),
        jw("p1_nrca2_uncal.fits", DETECTOR="NRCA2", FILTER="F150W", PUPIL="CLEAR"),
        jw("q1_nis_uncal.fits", INSTRUME="NIRISS", DETECTOR="NIS", EXP_TYPE="NIS_WFSS", FILTER="GR150C",
           PUPIL="F200W", TARGNAME="NONE", VISITYPE="PARALLEL_PURE"),
        jw("q2_nis_uncal.fits", INSTRUME="NIRISS", DETECTOR="NIS", EXP_TYPE="NIS_IMAGE", FILTER="CLEAR",
           PUPIL="F200W", TARGNAME="", VISITYPE="PARALLEL_PURE"),
    ]
    # Sorted target names of the program: "NGC-1" < "NONE".
    assert names(exps) == [
        "jw01234-o001_t001_nircam_clear-f150w",
        "jw01234-o001_t002_niriss_clear-f200w",
        "jw01234-o001_{source_id}_niriss_f200w-gr150c",
    ]
    assert [p.category for p in group_products(exps)] == ["image", "image", "spec"]


def test_background_and_imprint_join_science_and_calibration_is_left_out():
    exps = [
        jw("s1_uncal.fits", INSTRUME="NIRSPEC", EXP_TYPE="NRS_IFU", FILTER="F290LP", GRATING="G395H"),
        jw("b1_uncal.fits", INSTRUME="NIRSPEC", EXP_TYPE="NRS_IFU", FILTER="F290LP", GRATING="G395H",
           BKGDTARG="T", TARGNAME="BKG", OBSERVTN="002"),
        jw("i1_uncal.fits", INSTRUME="NIRSPEC", EXP_TYPE="NRS_IFU", FILTER="F290LP", GRATING="G395H", IS_IMPRT=True),
        jw("ta_uncal.fits", INSTRUME="NIRSPEC", EXP_TYPE="NRS_TACQ", FILTER="F110W"),
        jw("d_uncal.fits", EXP_TYPE="NRC_DARK"),
    ]
    (prod,) = group_products(exps)
    assert prod.name == "jw01234-o001_t001_nirspec_g395h-f290lp"
    assert prod.members == [("b1_uncal.fits", "background"), ("i1_uncal.fits", "imprint"), ("s1_uncal.fits", "science")]


def test_several_targets_and_observations():
    exps = [
        jw("x1_uncal.fits", FILTER="F200W", PUPIL="CLEAR", TARGNAME="ZETA"),
        jw("x2_uncal.fits", FILTER="F200W", PUPIL="CLEAR", TARGNAME="ALPHA"),
        jw("x3_uncal.fits", FILTER="F200W", PUPIL="CLEAR", TARGNAME="ALPHA", OBSERVTN="7"),
        jw("x4_uncal.fits", FILTER="F200W", PUPIL="CLEAR", PROGRAM=42, TARGNAME="ZETA"),
    ]
    assert names(exps) == [
        "jw00042-o001_t001_nircam_clear-f200w",
        "jw01234-o001_t001_nircam_clear-f200w",
        "jw01234-o001_t002_nircam_clear-f200w",
        "jw01234-o007_t001_nircam_clear-f200w",
    ]
    # A pool's TARGETID wins over the name's rank.
    assert names([jw("y_uncal.fits", FILTER="F200W", TARGETID=17)]) == ["jw01234-o001_t017_nircam_f200w"]


def test_calpipe_rule():
    def cp(name, **kw):
        base = dict(expname=name, observatory="calpipe", program=1, observtn=2, instrume="WFI",
                    detector="WFI01", filter="F158", exp_type="WFI_IMAGE", targname="FIELD-A")
        base.update(kw)
        return normalise(base)

    exps = [cp("cp00001002001_0001_wfi01_uncal.asdf"), cp("cp00001002001_0001_wfi02_uncal.asdf", detector="WFI02"),
            cp("cp00001002001_0002_wfi01_uncal.asdf", filter="NONE"),
            cp("cp00001002001_0003_wfi01_uncal.asdf", exp_type="WFI_DARK"),
            cp("cp00001003001_0001_wfi01_uncal.asdf", observtn=3, exp_type="WFI_GRISM", filter="GRISM")]
    prods = group_products(exps)
    assert [(p.name, p.category, len(p.members)) for p in prods] == [
        ("cp00001-o002_t001_wfi_clear", "image", 1),
        ("cp00001-o002_t001_wfi_f158", "image", 2),
        ("cp00001-o003_t001_wfi_grism", "spec", 1),
    ]


SCRIPT = """
import json, sys
from calpipe.associations.pool import group_products, normalise
rows = json.loads(sys.argv[1])
print(json.dumps([(p.name, p.product_id) for p in group_products([normalise(r) for r in rows])]))
"""


def test_ids_independent_of_order_and_hash_seed():
    rows = [dict(FILENAME=f"e{i}_uncal.fits", PROGRAM=5, OBSERVTN=i % 3, TARGNAME=f"T{i % 4}", INSTRUME="NIRCAM",
                 EXP_TYPE="NRC_IMAGE", FILTER=f"F{100 + 10 * (i % 2)}W", PUPIL="CLEAR") for i in range(24)]
    outs = set()
    for seed, order in (("0", rows), ("1", rows[::-1]), ("12345", rows[5:] + rows[:5])):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        res = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(order)], env=env,
                             capture_output=True, text=True, check=True)
        outs.add(res.stdout)
    assert len(outs) == 1
    got = json.loads(outs.pop())
    assert len(got) == 3 * 4 * 2 // 2  # obs x target x filter combinations present
    assert all(len(pid) == 16 for _, pid in got)


def test_associations_from_pool():
    exps = [jw("b_uncal.fits", FILTER="F200W", PUPIL="CLEAR"), jw("a_uncal.fits", FILTER="F200W", PUPIL="CLEAR")]
    ((asn_id, asn),) = associations_from_pool(exps, "p.csv")
    assert asn_id.startswith("jw01234-a") and asn["asn_type"] == "image3" and asn["target"] == "t001"
    assert asn["products"][0]["members"] == [{"expname": "a_uncal.fits", "exptype": "science"},
                                              {"expname": "b_uncal.fits", "exptype": "science"}]
