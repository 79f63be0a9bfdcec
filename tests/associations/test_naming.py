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
    # JWST's IFU background rule (Asn_Lv3NRSIFUBackground): background joins as a member.
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


# -- JWST Level-3 rules (jwst.associations.lib.rules_level3) ---------------------------------

def test_jwst_background_imaging_makes_its_own_image3_product():
    # Asn_Lv3ImageBackground: a background target's imaging is an image3 product of its own
    # observation and target, never folded into the science target's product.
    exps = [jw("s1_uncal.fits", FILTER="F200W", PUPIL="CLEAR"),
            jw("s2_uncal.fits", DETECTOR="NRCA2", FILTER="F200W", PUPIL="CLEAR"),
            jw("b1_uncal.fits", FILTER="F200W", PUPIL="CLEAR", BKGDTARG="T", TARGNAME="BKG-FIELD", OBSERVTN="002")]
    prods = group_products(exps)
    assert [(p.name, p.members) for p in prods] == [
        ("jw01234-o001_t002_nircam_clear-f200w", [("s1_uncal.fits", "science"), ("s2_uncal.fits", "science")]),
        ("jw01234-o002_t001_nircam_clear-f200w", [("b1_uncal.fits", "science")]),
    ]
    assert [p.category for p in prods] == ["image", "image"]
    # Alone (the science observation not yet taken), it is still a product.
    assert names(exps[2:]) == ["jw01234-o002_t001_nircam_clear-f200w"]


def test_jwst_tso_nirspec_fixed_slit_is_named():
    # Asn_Lv3TSO with Constraint_Optical_Path: the bright-object fixed slit is part of the
    # optical path, so the product name carries it before the subarray.
    exp = jw("a_uncal.fits", INSTRUME="NIRSPEC", DETECTOR="NRS1", EXP_TYPE="NRS_BRIGHTOBJ", FILTER="CLEAR",
             GRATING="PRISM", FXD_SLIT="S1600A1", SUBARRAY="SUB512", TSOVISIT="T")
    ((prod,),) = [group_products([exp])]
    assert prod.name == "jw01234-o001_t001_nirspec_clear-prism-s1600a1-sub512" and prod.category == "tac"


def test_jwst_mrs_one_product_per_channel_and_band():
    # Asn_Lv3MIRMRS: spec3 builds cubes per channel and band, which operations report as
    # separate products (ch1-short, ...). Each exposure belongs to every channel/band it covers.
    mrs = dict(INSTRUME="MIRI", EXP_TYPE="MIR_MRS")
    exps = [
        jw("a_mirifushort_uncal.fits", DETECTOR="MIRIFUSHORT", CHANNEL="12", BAND="SHORT", **mrs),
        jw("a_mirifulong_uncal.fits", DETECTOR="MIRIFULONG", CHANNEL="34", BAND="SHORT", **mrs),
        jw("b_mirifushort_uncal.fits", DETECTOR="MIRIFUSHORT", CHANNEL="12", BAND="LONG", **mrs),
    ]
    prods = group_products(exps)
    assert [(p.name.split("_")[-1], [m for m, _ in p.members]) for p in prods] == [
        ("ch1-long", ["b_mirifushort_uncal.fits"]),
        ("ch1-short", ["a_mirifushort_uncal.fits"]),
        ("ch2-long", ["b_mirifushort_uncal.fits"]),
        ("ch2-short", ["a_mirifushort_uncal.fits"]),
        ("ch3-short", ["a_mirifulong_uncal.fits"]),
        ("ch4-short", ["a_mirifulong_uncal.fits"]),
    ]
    assert prods[0].name == "jw01234-o001_t001_miri_ch1-long" and {p.category for p in prods} == {"spec"}
    # A background exposure joins the matching channel/band products (Asn_Lv3MIRMRSBackground).
    bkg = jw("c_mirifushort_uncal.fits", DETECTOR="MIRIFUSHORT", CHANNEL="12", BAND="SHORT", BKGDTARG=True, **mrs)
    with_bkg = {p.name.split("_")[-1]: p.members for p in group_products(exps + [bkg])}
    assert with_bkg["ch1-short"] == [("a_mirifushort_uncal.fits", "science"), ("c_mirifushort_uncal.fits", "background")]
    assert ("c_mirifushort_uncal.fits", "background") not in with_bkg["ch3-short"]


@pytest.mark.parametrize("detector, subarray, expected", [
    ("NRCA2", "FULL", ["jw01234-o001_t001_nircam_f210m-maskrnd", "jw01234-o001_t001_nircam_f210m-maskrnd-image3"]),
    ("NRCALONG", "FULL", ["jw01234-o001_t001_nircam_f335m-maskrnd"]),
    ("NRCA2", "SUB640A210R", ["jw01234-o001_t001_nircam_f210m-maskrnd-sub640a210r"]),
])
def test_jwst_nircam_coronagraphy_image3(detector, subarray, expected):
    # Asn_Lv3NRCCoronImage: short-wavelength full-frame coronagraphy is also processed as
    # plain imaging (image3, "-image3" product), besides Asn_Lv3NRCCoron's coron3 product.
    filt = "F335M" if detector.endswith("LONG") else "F210M"
    prods = group_products([jw("a_uncal.fits", EXP_TYPE="NRC_CORON", DETECTOR=detector, FILTER=filt,
                               PUPIL="MASKRND", SUBARRAY=subarray)])
    assert [p.name for p in prods] == expected
    assert [p.category for p in prods] == ["tac", "image"][:len(expected)]


@pytest.mark.parametrize("pupil, detector, makes", [
    ("CLEAR", "NRCALONG", False), ("GRISMR", "NRCBLONG", False), ("GRISMR", "NRCALONG", True),
])
def test_jwst_tsgrism_engineering_modes_make_no_product(pupil, detector, makes):
    # Asn_Lv3TSO excludes NRC_TSGRISM with PUPIL=CLEAR and NRC_TSGRISM on NRCBLONG.
    exp = jw("a_uncal.fits", EXP_TYPE="NRC_TSGRISM", DETECTOR=detector, FILTER="F322W2", PUPIL=pupil,
             SUBARRAY="SUBGRISM256", TSOVISIT="T")
    assert len(names([exp])) == int(makes)


def test_products_that_cannot_be_named_are_refused():
    # JWST names need the program and the instrument: no "_none_" or "jw00000" product.
    from calpipe.associations.naming import naming_problem

    no_instrument = jw("a_uncal.fits", FILTER="F200W", INSTRUME="")
    no_program = jw("b_uncal.fits", FILTER="F200W", PROGRAM="")
    both = jw("c_uncal.fits", FILTER="F200W", PROGRAM="", INSTRUME="N/A")
    good = jw("d_uncal.fits", FILTER="F200W")
    assert [naming_problem(e) for e in (no_instrument, no_program, both, good)] == [
        "INSTRUME missing", "PROGRAM missing", "INSTRUME and PROGRAM missing", None]
    assert names([no_instrument, no_program, both, good]) == ["jw01234-o001_t001_nircam_f200w"]
    # A calibration exposure makes no product, so it has nothing to name.
    assert naming_problem(jw("d_uncal.fits", EXP_TYPE="NRC_DARK", INSTRUME="")) is None


def test_targets_known_by_position_only():
    from calpipe.associations.naming import target_labels

    # No name: exposures within a second of arc of one another are one target.
    exps = [jw(f"p{i}_uncal.fits", FILTER="F200W", TARGNAME="", TARG_RA=150.0 + dra, TARG_DEC=2.0)
            for i, dra in enumerate((0.0, 0.5 / 3600, 5.0 / 3600))]
    labels = target_labels(exps)
    assert labels["p0_uncal.fits"] == labels["p1_uncal.fits"] == "pos:150.000000,+2.000000"
    assert labels["p2_uncal.fits"] == "pos:150.001389,+2.000000"
    # A position near a known label takes that label.
    assert target_labels(exps[2:], known=["pos:150.001500,+2.000000"]) == {"p2_uncal.fits": "pos:150.001500,+2.000000"}
    assert names(exps) == ["jw01234-o001_t001_nircam_f200w", "jw01234-o001_t002_nircam_f200w"]


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
