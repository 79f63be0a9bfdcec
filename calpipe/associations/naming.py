"""Level-3 product names for JWST exposures and the analogous rule for calpipe's own.

Every function here works on *normalised exposure records* (see
:func:`calpipe.associations.pool.normalise`): flat dicts with lower-case keys, strings
upper-case with ``"NONE"`` for a missing value, integers 0, floats NaN, booleans False.

JWST (``jw{program}-o{obs}_{target}_{instrument}_{optical elements}[-{slit}][-{subarray}]``,
all lower case):

* optical elements: the present values of FILTER, PUPIL and GRATING, sorted alphabetically
  and joined with ``-`` ("clear" is kept: ``clear-f090w``); ``clear`` when none is present.
  IFU products are named as their cubes are: NIRSpec grating first (``g395h-f290lp``,
  ``prism-clear``), MIRI MRS by channels and bands (``ch1-2-3-4-shortmediumlong``, the union
  over the product's exposures).
* slit: NIRSpec fixed-slit products append FXD_SLIT (``-s200a1``); time series never do.
* subarray: appended unless FULL or missing.
* target: ``t{n:03d}``; source-based spectroscopy (WFSS, MSA, fixed slit) carries the
  ``{source_id}`` placeholder that Level-3 processing fills per source.
* wavefront sensing (VISITYPE containing WFSC): one product per detector, ``-{detector}``
  appended.

calpipe (``cp{program:05d}-o{observation:03d}_t{n:03d}_{instrument}_{optical_element}``):
every detector of one observation, target and optical element makes one product.
"""

IMAGE_TYPES = {"NRC_IMAGE", "MIR_IMAGE", "NIS_IMAGE", "FGS_IMAGE"}
CORON_TYPES = {"NRC_CORON", "MIR_LYOT", "MIR_4QPM"}
ALWAYS_TSO_TYPES = {"NRC_TSIMAGE", "NRC_TSGRISM", "NRS_BRIGHTOBJ"}
SPEC_TYPES = {
    "MIR_LRS-FIXEDSLIT", "MIR_LRS-SLITLESS", "MIR_MRS", "NRC_WFSS", "NIS_WFSS",
    "NIS_SOSS", "NRS_FIXEDSLIT", "NRS_IFU", "NRS_MSASPEC",
}
SOURCE_BASED_RULES = {"wfss", "msa", "fs"}
# Model families the training exports are split by.
CATEGORY = {
    "image": "image", "wfs": "image",
    "ifu": "spec", "mrs": "spec", "wfss": "spec", "msa": "spec", "fs": "spec", "spec": "spec",
    "tso": "tac", "ami": "tac", "coron": "tac",
}
ASN_TYPE = {"image": "image3", "spec": "spec3", "tac": "tso3"}
MRS_BANDS = ("SHORT", "MEDIUM", "LONG")
CALPIPE_CALIBRATION_WORDS = ("DARK", "FLAT", "BIAS", "LAMP")
SOURCE_ID = "{source_id}"


def present(value):
    return value not in ("NONE", "", None)


def jwst_rule(exp):
    """The Level-3 rule an exposure falls under, or None when it makes no Level-3 product."""
    exp_type = exp["exp_type"]
    if exp_type in IMAGE_TYPES and "WFSC" in exp["visitype"]:
        return "wfs"
    if exp_type in CORON_TYPES:
        return "coron"
    if exp_type == "NIS_AMI":
        return "ami"
    if exp_type in ALWAYS_TSO_TYPES or (exp["tsovisit"] and (exp_type in IMAGE_TYPES or exp_type in SPEC_TYPES)):
        return "tso"
    if exp_type == "MIR_LRS-SLITLESS":  # a Level-3 product only as a time series
        return None
    if exp_type in IMAGE_TYPES:
        return "image"
    return {
        "NRS_IFU": "ifu", "MIR_MRS": "mrs", "NRC_WFSS": "wfss", "NIS_WFSS": "wfss",
        "NRS_MSASPEC": "msa", "NRS_FIXEDSLIT": "fs",
    }.get(exp_type, "spec" if exp_type in SPEC_TYPES else None)


def calpipe_rule(exp):
    exp_type = exp["exp_type"]
    if any(word in exp_type for word in CALPIPE_CALIBRATION_WORDS):
        return None
    if any(word in exp_type for word in ("GRISM", "PRISM", "SPEC")):
        return "spec"
    return "image"


def rule_of(exp):
    return calpipe_rule(exp) if exp["observatory"] == "calpipe" else jwst_rule(exp)


def member_exptype(exp):
    """Association member type: background and imprint exposures join a science product."""
    if exp.get("bkgdtarg"):
        return "background"
    if exp.get("is_imprt"):
        return "imprint"
    return "science"


def optical_path(exp, rule):
    """The part of the name fixed by one exposure's optical path: elements, slit, subarray.

    For MIRI MRS the channels and bands are left out here (they are the union over the
    product) and added by :func:`product_name`.
    """
    if exp["observatory"] == "calpipe":
        elem = exp["filter"].lower() if present(exp["filter"]) else "clear"
        return elem
    if rule == "mrs":
        elem = "mrs"
    elif rule == "ifu":
        elem = "-".join(v.lower() for v in (exp["grating"], exp["filter"]) if present(v)) or "clear"
    else:
        values = [exp[k].lower() for k in ("filter", "pupil", "grating") if present(exp[k])]
        elem = "-".join(sorted(values)) or "clear"
    if rule == "fs" and present(exp["fxd_slit"]):
        elem += "-" + exp["fxd_slit"].lower()
    if present(exp["subarray"]) and exp["subarray"] != "FULL":
        elem += "-" + exp["subarray"].lower()
    if rule == "wfs":
        elem += "-" + exp["detector"].lower()
    return elem


def _mrs_element(exposures):
    channels = sorted({c for e in exposures for c in e["channel"] if c.isdigit()})
    bands = {b for e in exposures for b in e["band"].split("-") if b in MRS_BANDS}
    elem = "ch" + "-".join(channels) if channels else "clear"
    band_text = "".join(b.lower() for b in MRS_BANDS if b in bands)
    return f"{elem}-{band_text}" if band_text else elem


def target_label(exp):
    """What identifies an exposure's target within its program."""
    if exp.get("targetid"):
        return (0, f"{exp['targetid']:09d}")
    return (1, exp["targname"])


def target_numbers(exposures):
    """Map (observatory, program, target label) to a target number.

    A pool's TARGETID is used as is; otherwise targets are numbered 1, 2, ... in the sorted
    order of their names within the program, so that the same exposures always give the same
    numbers whatever their order, process or hash seed.
    """
    labels = {}
    for e in exposures:
        labels.setdefault((e["observatory"], e["program"]), set()).add(target_label(e))
    numbers = {}
    for (obs, prog), names in labels.items():
        rank = 0
        for label in sorted(names):
            if label[0] == 0:
                numbers[(obs, prog, label)] = int(label[1])
            else:
                rank += 1
                numbers[(obs, prog, label)] = rank
    return numbers


def product_name(exposures, target_number):
    """Name of the product made from ``exposures`` (one group, science members first)."""
    first = exposures[0]
    rule = rule_of(first)
    elem = optical_path(first, rule)
    if rule == "mrs":
        elem = elem.replace("mrs", _mrs_element(exposures), 1)
    instrument = first["instrume"].lower()
    if first["observatory"] == "calpipe":
        return f"cp{first['program']:05d}-o{first['observtn']:03d}_t{target_number:03d}_{instrument}_{elem}"
    target = SOURCE_ID if rule in SOURCE_BASED_RULES else f"t{target_number:03d}"
    return f"jw{first['program']:05d}-o{first['observtn']:03d}_{target}_{instrument}_{elem}"


def category_of(exp):
    rule = rule_of(exp)
    if rule is None:
        return None
    return "image" if exp["observatory"] == "calpipe" and rule == "image" else CATEGORY.get(rule, rule)
