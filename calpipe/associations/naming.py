"""Level-3 product names for JWST exposures and the analogous rule for calpipe's own.

Every function here works on *normalised exposure records* (see
:func:`calpipe.associations.pool.normalise`): flat dicts with lower-case keys, strings
upper-case with ``"NONE"`` for a missing value, integers 0, floats NaN, booleans False.

JWST (``jw{program}-o{obs}_{target}_{instrument}_{optical elements}[-{slit}][-{subarray}]``,
all lower case):

* optical elements: the present values of FILTER, PUPIL and GRATING, sorted alphabetically
  and joined with ``-`` ("clear" is kept: ``clear-f090w``); ``clear`` when none is present.
  NIRSpec IFU products are named as their cubes are, grating first (``g395h-f290lp``,
  ``prism-clear``). MIRI MRS makes one product per channel and band, as operations report
  them (``ch1-short``, ``ch3-long``); an exposure of detector MIRIFUSHORT with CHANNEL 12
  and BAND SHORT is a member of ``ch1-short`` and ``ch2-short``.
* slit: NIRSpec fixed-slit products, and NIRSpec bright-object time series (which JWST
  names by their fixed slit too), append FXD_SLIT (``-s1600a1``).
* subarray: appended unless FULL or missing.
* target: ``t{n:03d}``; source-based spectroscopy (WFSS, MSA, fixed slit) carries the
  ``{source_id}`` placeholder that Level-3 processing fills per source.
* wavefront sensing (VISITYPE containing WFSC): one product per detector, ``-{detector}``
  appended.
* background-target imaging (BKGDTARG) makes its own image product, grouped and named by
  its own observation and target, as JWST's background image rule does; in spectroscopy
  background exposures join the science product as ``background`` members.
* NIRCam coronagraphy on a short-wavelength detector in full frame makes two products, as
  JWST does: the coronagraphic one and an image one named with ``-image3`` appended.
* NIRCam grism time series with PUPIL CLEAR, or on detector NRCBLONG, make no Level-3
  product (JWST's time-series rule leaves both out).
* An exposure without INSTRUME or PROGRAM cannot be named: :func:`naming_problem` says why
  and grouping leaves it out.

calpipe (``cp{program:05d}-o{observation:03d}_t{n:03d}_{instrument}_{optical_element}``):
every detector of one observation, target and optical element makes one product.

Targets
-------
An exposure's target is identified within its program by its *label*
(:func:`target_labels`): ``id:{TARGETID}`` when a pool gives one, else ``name:{TARGNAME}``,
else ``pos:{ra},{dec}`` for targets known only by position (positions within
:data:`TARGET_TOLERANCE_ARCSEC` are one target), else ``none``. Which number a label gets is
decided by the caller: :func:`target_numbers` numbers a pool on its own (TARGETID, else rank
of the label); the training database keeps numbers that never change.
"""

import math
import re

IMAGE_TYPES = {"NRC_IMAGE", "MIR_IMAGE", "NIS_IMAGE", "FGS_IMAGE"}
CORON_TYPES = {"NRC_CORON", "MIR_LYOT", "MIR_4QPM"}
ALWAYS_TSO_TYPES = {"NRC_TSIMAGE", "NRC_TSGRISM", "NRS_BRIGHTOBJ"}
SPEC_TYPES = {
    "MIR_LRS-FIXEDSLIT", "MIR_LRS-SLITLESS", "MIR_MRS", "NRC_WFSS", "NIS_WFSS",
    "NIS_SOSS", "NRS_FIXEDSLIT", "NRS_IFU", "NRS_MSASPEC",
}
SOURCE_BASED_RULES = {"wfss", "msa", "fs"}
# Rules whose background-target exposures make their own product rather than join one.
IMAGE_RULES = {"image", "coronimage"}
# Model families the training exports are split by.
CATEGORY = {
    "image": "image", "wfs": "image", "coronimage": "image",
    "ifu": "spec", "mrs": "spec", "wfss": "spec", "msa": "spec", "fs": "spec", "spec": "spec",
    "tso": "tac", "ami": "tac", "coron": "tac",
}
ASN_TYPE = {"image": "image3", "spec": "spec3", "tac": "tso3"}
MRS_BANDS = ("SHORT", "MEDIUM", "LONG")
NIRCAM_SHORT_DETECTORS = {f"NRC{m}{n}" for m in "AB" for n in "1234"}
CALPIPE_CALIBRATION_WORDS = ("DARK", "FLAT", "BIAS", "LAMP")
SOURCE_ID = "{source_id}"
TARGET_TOLERANCE_ARCSEC = 1.0
_NAME = re.compile(r"^(jw|cp)(\d{5})-([a-z])(\d+)_([^_]+)_(.+)$")


def present(value):
    return value not in ("NONE", "", None)


def jwst_rules(exp):
    """The Level-3 rules an exposure falls under (a list; empty when it makes no product)."""
    exp_type = exp["exp_type"]
    if exp_type in IMAGE_TYPES and "WFSC" in exp["visitype"]:
        return ["wfs"]
    if exp_type in CORON_TYPES:
        # JWST's coronagraphic image rule: NIRCam short-wavelength full frame is also imaging.
        if exp_type == "NRC_CORON" and exp["detector"] in NIRCAM_SHORT_DETECTORS and exp["subarray"] == "FULL":
            return ["coron", "coronimage"]
        return ["coron"]
    if exp_type == "NIS_AMI":
        return ["ami"]
    if exp_type == "NRC_TSGRISM" and (exp["pupil"] == "CLEAR" or exp["detector"] == "NRCBLONG"):
        return []  # JWST's time-series rule leaves these engineering modes out
    if exp_type in ALWAYS_TSO_TYPES or (exp["tsovisit"] and (exp_type in IMAGE_TYPES or exp_type in SPEC_TYPES)):
        return ["tso"]
    if exp_type == "MIR_LRS-SLITLESS":  # a Level-3 product only as a time series
        return []
    if exp_type in IMAGE_TYPES:
        return ["image"]
    rule = {
        "NRS_IFU": "ifu", "MIR_MRS": "mrs", "NRC_WFSS": "wfss", "NIS_WFSS": "wfss",
        "NRS_MSASPEC": "msa", "NRS_FIXEDSLIT": "fs",
    }.get(exp_type, "spec" if exp_type in SPEC_TYPES else None)
    return [rule] if rule else []


def calpipe_rule(exp):
    exp_type = exp["exp_type"]
    if any(word in exp_type for word in CALPIPE_CALIBRATION_WORDS):
        return None
    if any(word in exp_type for word in ("GRISM", "PRISM", "SPEC")):
        return "spec"
    return "image"


def rules_of(exp):
    if exp["observatory"] == "calpipe":
        rule = calpipe_rule(exp)
        return [rule] if rule else []
    return jwst_rules(exp)


def rule_of(exp):
    rules = rules_of(exp)
    return rules[0] if rules else None


def naming_problem(exp):
    """Why an exposure that would make a product cannot be named (one phrase), or None."""
    if not rules_of(exp):
        return None
    missing = [k.upper() for k in ("instrume", "program") if not exp[k] or exp[k] == "NONE"]
    return f"{' and '.join(missing)} missing" if missing else None


def member_exptype(exp, rule=None):
    """Association member type: background and imprint exposures join a science product.

    Under an imaging rule a background-target exposure is the science of its own product.
    """
    if exp.get("bkgdtarg"):
        return "science" if (rule or rule_of(exp)) in IMAGE_RULES else "background"
    if exp.get("is_imprt"):
        return "imprint"
    return "science"


def optical_paths(exp, rule):
    """The parts of the names fixed by one exposure's optical path: elements, slit, subarray.

    One per product the exposure belongs to under ``rule``: several for MIRI MRS (one per
    channel and band it covers), one otherwise.
    """
    if exp["observatory"] == "calpipe":
        return [exp["filter"].lower() if present(exp["filter"]) else "clear"]
    if rule == "mrs":
        channels = sorted(c for c in set(exp["channel"]) if c.isdigit())
        bands = [b for b in MRS_BANDS if b in exp["band"].split("-")]
        return [f"ch{c}-{b.lower()}" for c in channels for b in bands] or ["clear"]
    if rule == "ifu":
        elem = "-".join(v.lower() for v in (exp["grating"], exp["filter"]) if present(v)) or "clear"
    else:
        values = [exp[k].lower() for k in ("filter", "pupil", "grating") if present(exp[k])]
        elem = "-".join(sorted(values)) or "clear"
    if (rule == "fs" or (rule == "tso" and exp["exp_type"] == "NRS_BRIGHTOBJ")) and present(exp["fxd_slit"]):
        elem += "-" + exp["fxd_slit"].lower()
    if rule == "coronimage":
        elem += "-image3"
    if present(exp["subarray"]) and exp["subarray"] != "FULL":
        elem += "-" + exp["subarray"].lower()
    if rule == "wfs":
        elem += "-" + exp["detector"].lower()
    return [elem]


def _position_label(ra, dec):
    return f"pos:{ra:.6f},{dec:+.6f}"


def label_position(label):
    """(ra, dec) in degrees of a ``pos:`` label; None for other labels."""
    if not label.startswith("pos:"):
        return None
    ra, dec = label[4:].split(",")
    return float(ra), float(dec)


def _separation_arcsec(ra1, dec1, ra2, dec2):
    # Haversine: accurate at the sub-arcsecond distances a tolerance compares.
    ra1, dec1, ra2, dec2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = math.sin((dec2 - dec1) / 2) ** 2 + math.cos(dec1) * math.cos(dec2) * math.sin((ra2 - ra1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h)))) * 3600.0


def near(position, other, tolerance=TARGET_TOLERANCE_ARCSEC):
    """Whether two (ra, dec) positions in degrees are one target."""
    return _separation_arcsec(*position, *other) <= tolerance


def target_labels(exposures, known=(), tolerance=TARGET_TOLERANCE_ARCSEC):
    """``{expname: label}`` of each exposure's target (see the module notes).

    An exposure known only by its position takes the label of the first ``known`` label
    (or earlier exposure, in name order) within ``tolerance`` arcsec, else a new one.
    """
    positions = [(lab, pos) for lab in sorted(known) if (pos := label_position(lab))]
    labels = {}
    for e in sorted(exposures, key=lambda x: x["expname"]):
        if e.get("targetid"):
            labels[e["expname"]] = f"id:{e['targetid']}"
        elif present(e["targname"]):
            labels[e["expname"]] = f"name:{e['targname']}"
        elif math.isfinite(e["targ_ra"]) and math.isfinite(e["targ_dec"]):
            here = (e["targ_ra"], e["targ_dec"])
            label = next((lab for lab, pos in positions if near(here, pos, tolerance)), None)
            if label is None:
                label = _position_label(*here)
                positions.append((label, here))
            labels[e["expname"]] = label
        else:
            labels[e["expname"]] = "none"
    return labels


def target_numbers(keys):
    """Number the targets of a pool on their own: ``{(observatory, program, label): n}``.

    ``keys`` are ``(observatory, program, label)``. An ``id:`` label (a pool's TARGETID) keeps
    its number; the others are numbered 1, 2, ... in the sorted order of their labels within
    the program, so that the same exposures always give the same numbers whatever their
    order, process or hash seed.
    """
    by_program = {}
    for obs, prog, label in set(keys):
        by_program.setdefault((obs, prog), set()).add(label)
    numbers = {}
    for (obs, prog), labels in by_program.items():
        rank = 0
        for label in sorted(labels, key=lambda lab: (not lab.startswith("id:"), lab)):
            if label.startswith("id:"):
                numbers[(obs, prog, label)] = int(label[3:])
            else:
                rank += 1
                numbers[(obs, prog, label)] = rank
    return numbers


def product_name(exp, rule, elem, target_number):
    """Name of the product an exposure makes under ``rule`` with optical-path part ``elem``."""
    instrument = exp["instrume"].lower()
    if exp["observatory"] == "calpipe":
        return f"cp{exp['program']:05d}-o{exp['observtn']:03d}_t{target_number:03d}_{instrument}_{elem}"
    target = SOURCE_ID if rule in SOURCE_BASED_RULES else f"t{target_number:03d}"
    return f"jw{exp['program']:05d}-o{exp['observtn']:03d}_{target}_{instrument}_{elem}"


def parse_product_name(name):
    """The parts of a Level-3 product name, or None when it is not one.

    Returns a dict: ``observatory`` (``jwst`` or ``calpipe``), ``program`` (int),
    ``candidate`` (``o001``, ``c1000``, ...; only ``o`` candidates are single observations),
    ``target`` (the number, or None for a source id or placeholder), ``source`` (True for a
    source-based name) and ``match_key`` (the name without its target part).
    """
    m = _NAME.match(name.strip().lower())
    if not m:
        return None
    prefix, program, letter, number, target, rest = m.groups()
    tm = re.fullmatch(r"t(\d+)", target)
    return {
        "observatory": "calpipe" if prefix == "cp" else "jwst", "program": int(program),
        "candidate": f"{letter}{number}", "target": int(tm.group(1)) if tm else None,
        "source": target == SOURCE_ID or bool(re.fullmatch(r"s\d+", target)),
        "match_key": f"{prefix}{program}-{letter}{number}_{rest}",
    }


def with_target(name, number):
    """``name`` with its target part replaced by ``t{number:03d}``."""
    head, _, rest = name.split("_", 2)
    return f"{head}_t{number:03d}_{rest}"


def category_of(exp, rule):
    """The model family (``image``, ``spec``, ``tac``) of the product ``exp`` makes under ``rule``."""
    return "image" if exp["observatory"] == "calpipe" and rule == "image" else CATEGORY.get(rule, rule)
