"""A Roman Level-1 exposure with a known truth, made without calpipe's simulator.

The ramp is simulated read by read from physics, and every file is written with the Roman
mission's own data-model library (``roman_datamodels`` classes and their makers), so that it
is an independent check of calpipe's reading, calibration and error model, and an input the
Roman pipeline (romancal) takes as it is.

The detector (``size`` x ``size`` pixels, the outer 4 of them reference pixels that see no
light, plus the 128-column ``amp33`` channel):

- signal: a uniform sky and Gaussian stars, in DN/s before the flat field (this is the
  truth); the pixels see ``truth * flat + dark``, converted to electrons by the gain;
- Poisson noise on the electrons of every frame; cosmic rays deposit 200-20,000 e between
  two frames (3% of it in each of the four neighbours);
- a full well in electrons, where the charge stops growing (saturation);
- a non-linear response: ``u`` measured DN for ``q`` accumulated DN solves ``q = u + beta u^2``,
  so the linearity correction is exactly that quadratic (in raw counts, bias included);
- a bias of about 12,000 DN per pixel, constant in time (optionally a common offset drawn
  per read, ``common_noise`` DN, off by default), Gaussian read noise per read; every read is digitized, the reads of a resultant averaged and rounded (uint16);
- dead pixels (no response) and hot pixels (a large dark rate), flagged in the mask.

The reference files (mask, saturation, linearity, inverselinearity, dark, gain, readnoise,
flat, photom, distortion) describe that detector: exactly, except the inverse linearity (its
series is cut after the sixth power, about 1 DN off at the full well); the read noise is
given per read, in DN. With ``refpix=True`` (4096x4096 only: the Roman refpix reference has
one row per 128-column channel of a full detector) a refpix reference with zero Fourier
weights is written too, the right ones for a detector without correlated read noise.
"""

import os
import warnings
from math import comb

import numpy as np

BORDER = 4
FRAME_TIME = 3.04  # s
# 6 resultants of unequal length, the last a single read
READ_PATTERN = [[1], [2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15, 16, 17], [18]]
REFTYPES = ("mask", "saturation", "linearity", "inverselinearity", "dark", "gain", "readnoise", "flat", "photom",
            "distortion")
CLASSES = {"mask": "MaskRefModel", "saturation": "SaturationRefModel", "linearity": "LinearityRefModel",
           "inverselinearity": "InverselinearityRefModel", "dark": "DarkRefModel", "gain": "GainRefModel",
           "readnoise": "ReadnoiseRefModel", "flat": "FlatRefModel", "photom": "WfiImgPhotomRefModel",
           "distortion": "DistortionRefModel", "refpix": "RefpixRefModel"}
# Catalan numbers: the series of the root of q = u + beta u^2, u = sum (-1)^k C_k beta^k q^(k+1)
CATALAN = (1, 1, 2, 5, 14, 42)
PIXEL_SCALE = 0.11  # arcsec
V2V3_REF = (-1312.9, -1040.8)  # arcsec


def _rdm():
    import roman_datamodels.datamodels as rdm

    return rdm


def open_quietly(path):
    """``roman_datamodels.datamodels.open`` without its schema-version warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _rdm().open(path)


def _pixel_flags():
    from roman_datamodels import dqflags

    return dqflags.pixel


def _star_field(rng, ny, nx, nstars):
    """Sum of pixel-integrated Gaussian stars (DN/s) and the star list."""
    from scipy.special import erf

    x = rng.uniform(-5, nx + 5, nstars)
    y = rng.uniform(-5, ny + 5, nstars)
    # power law in flux, from faint to saturating within the exposure
    flux = 20.0 * (1 - rng.uniform(0, 1, nstars)) ** (-1 / 0.7)
    flux = np.minimum(flux, 2e5)
    sigma = 1.2
    image = np.zeros((ny, nx))
    half = 12
    for xs, ys, fs in zip(x, y, flux):
        x0, x1 = max(int(xs) - half, 0), min(int(xs) + half + 1, nx)
        y0, y1 = max(int(ys) - half, 0), min(int(ys) + half + 1, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        ex = np.arange(x0, x1 + 1) - 0.5 - xs
        ey = np.arange(y0, y1 + 1) - 0.5 - ys
        px = np.diff(0.5 * erf(ex / (np.sqrt(2) * sigma)))
        py = np.diff(0.5 * erf(ey / (np.sqrt(2) * sigma)))
        image[y0:y1, x0:x1] += fs * np.outer(py, px)
    return image, {"x": x, "y": y, "flux": flux}


def _measured(q, beta):
    """Measured DN ``u`` of ``q`` accumulated DN, the root of ``q = u + beta u^2``."""
    return 2 * q / (1 + np.sqrt(1 + 4 * beta * q))


def simulate(size=512, seed=1, read_pattern=READ_PATTERN, frame_time=FRAME_TIME, sky=1.5, common_noise=0.0):
    """The detector, the truth and the resultants, as arrays (see the module docstring)."""
    flags = _pixel_flags()
    rng = np.random.default_rng(seed)
    n = size - 2 * BORDER
    sci = (slice(BORDER, size - BORDER),) * 2
    nreads = read_pattern[-1][-1]

    gain = rng.normal(2.0, 0.06, (size, size)).astype(np.float32)  # e/DN
    readnoise = rng.normal(5.0, 0.3, (size, size)).clip(3.5, None).astype(np.float32)  # DN per read
    bias = rng.normal(12000.0, 300.0, (size, size))
    beta = rng.normal(1.5e-6, 0.1e-6, (size, size))  # 1/DN
    full_well = rng.normal(100_000.0, 2000.0, (size, size))  # e
    flat = np.ones((size, size), np.float32)
    flat[sci] = rng.normal(1.0, 0.03, (n, n))
    dark = np.zeros((size, size), np.float32)
    dark[sci] = rng.gamma(2.0, 0.005, (n, n))  # DN/s
    mask = np.zeros((size, size), np.uint32)
    mask[:BORDER, :] = mask[-BORDER:, :] = mask[:, :BORDER] = mask[:, -BORDER:] = flags.REFERENCE_PIXEL
    interior = np.zeros((size, size), bool)
    interior[sci] = True
    bad = rng.choice(n * n, size=2 * max(n * n // 1000, 1), replace=False)
    dead_idx, hot_idx = bad[: len(bad) // 2], bad[len(bad) // 2:]
    dead = np.zeros((n, n), bool)
    dead.flat[dead_idx] = True
    hot = np.zeros((n, n), bool)
    hot.flat[hot_idx] = True
    mask[sci][dead] = flags.DEAD | flags.DO_NOT_USE
    mask[sci][hot] = flags.HOT
    dark[sci][hot] = rng.uniform(0.5, 5.0, hot.sum())
    response = np.zeros((size, size))
    response[sci] = np.where(dead, 0.0, 1.0)

    stars, sources = _star_field(rng, n, n, nstars=max(n * n // 800, 1))
    truth = (sky + stars).astype(np.float32)  # DN/s, flat-fielded
    rate_e = np.zeros((size, size))
    rate_e[sci] = (truth * flat[sci] + dark[sci]) * gain[sci]
    rate_e *= response

    # cosmic rays: (frame, y, x, electrons); frame k deposits before read k
    exposure = nreads * frame_time
    ncr = rng.poisson(2e-5 * exposure * n * n)
    cr_frame = rng.integers(1, nreads + 1, ncr)
    cr_y = rng.integers(BORDER, size - BORDER, ncr)
    cr_x = rng.integers(BORDER, size - BORDER, ncr)
    cr_e = np.exp(rng.uniform(np.log(200), np.log(20_000), ncr))
    jumps = np.zeros((size, size), np.int16)
    np.add.at(jumps, (cr_y, cr_x), 1)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        np.add.at(jumps, (np.clip(cr_y + dy, 0, size - 1), np.clip(cr_x + dx, 0, size - 1)), 1)

    q = np.zeros((size, size))  # accumulated electrons
    reached = np.zeros((size, size), bool)
    resultants = np.zeros((len(read_pattern), size, size), np.uint16)
    which = {r: i for i, reads in enumerate(read_pattern) for r in reads}
    total = np.zeros((size, size))
    nin = 0
    for read in range(1, nreads + 1):
        q += rng.poisson(rate_e * frame_time)
        hit = cr_frame == read
        if hit.any():
            deposit = np.zeros((size, size))
            np.add.at(deposit, (cr_y[hit], cr_x[hit]), cr_e[hit] * 0.88)
            for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                np.add.at(deposit, (np.clip(cr_y[hit] + dy, 0, size - 1), np.clip(cr_x[hit] + dx, 0, size - 1)),
                          cr_e[hit] * 0.03)
            q += deposit * response
        reached |= q >= full_well
        np.minimum(q, full_well, out=q)
        common = rng.normal(0.0, common_noise) if common_noise else 0.0
        counts = bias + common + _measured(q / gain, beta) + rng.normal(0.0, 1.0, (size, size)) * readnoise
        if read in which:
            total += np.floor(counts)
            nin += 1
            if read == read_pattern[which[read]][-1]:
                resultants[which[read]] = np.clip(np.rint(total / nin), 0, 65535)
                total[:] = 0
                nin = 0

    # the saturation reference: raw counts (bias in) at 97% of the full well
    saturation = (bias + _measured(0.97 * full_well / gain, beta)).astype(np.float32)
    # linearity in raw counts r = bias + u: P(r) = bias + u + beta u^2
    c0 = beta * bias**2
    c1 = 1 - 2 * beta * bias
    coeffs = np.stack([c0, c1, beta]).astype(np.float32)
    # inverse, linear counts L (bias in) -> raw r = bias + u(L - bias), as a polynomial in L
    inverse = np.zeros((len(CATALAN) + 1, size, size))
    for k, catalan in enumerate(CATALAN):
        term = (-1) ** k * catalan * beta**k  # times (L - bias)^(k + 1)
        for j in range(k + 2):
            inverse[j] += term * comb(k + 1, j) * (-bias) ** (k + 1 - j)
    inverse[0] += bias
    amp33 = np.clip(np.rint(rng.normal(12000.0, 5.0, (len(read_pattern), size, 128))), 0, 65535).astype(np.uint16)
    return {
        "resultants": resultants, "amp33": amp33, "read_pattern": [list(r) for r in read_pattern],
        "frame_time": frame_time,
        "truth": {"flux": truth, "jumps": jumps[sci], "saturated": reached[sci], "sky": sky,
                  "sources": sources},
        "refs": {"mask": mask, "saturation": saturation, "linearity": coeffs,
                 "inverselinearity": inverse.astype(np.float32), "dark": dark, "gain": gain,
                 "readnoise": readnoise, "flat": flat},
    }


def _distortion(center):
    """Science-array pixels -> V2/V3 arcsec: a scale, a mirror in V2 and a small rotation."""
    from astropy.modeling import models

    forward = ((models.Shift(-center) & models.Shift(-center))
               | (models.Scale(-PIXEL_SCALE) & models.Scale(PIXEL_SCALE))
               | models.Rotation2D(-0.42)
               | (models.Shift(V2V3_REF[0]) & models.Shift(V2V3_REF[1])))
    return forward.rename("detector_to_v2v3")


def _reference(reftype, arrays, detector, optical_element, shape):
    from astropy.time import Time

    rdm = _rdm()
    ref = getattr(rdm, CLASSES[reftype]).create_fake_data()
    ref.meta.instrument.detector = detector
    if "optical_element" in ref.meta.instrument:
        ref.meta.instrument.optical_element = optical_element
    ref.meta.useafter = Time("2020-01-01T00:00:00")
    ref.meta.pedigree = "SIMULATION"
    ref.meta.author = "tests/support/roman_ramp.py"
    ref.meta.description = f"Simulated {reftype} of a {shape[0]}x{shape[1]} detector"
    if "exposure" in ref.meta and "type" in ref.meta.exposure:
        ref.meta.exposure.type = "WFI_IMAGE"
    zeros = np.zeros(shape, np.uint32)
    if reftype == "mask":
        ref.dq = arrays["mask"]
    elif reftype == "saturation":
        ref.data, ref.dq = arrays["saturation"], zeros
    elif reftype in ("linearity", "inverselinearity"):
        ref.coeffs, ref.dq = arrays[reftype], zeros
    elif reftype == "dark":
        ref.dark_slope = arrays["dark"]
        ref.dark_slope_error = np.zeros(shape, np.float32)
        ref.dq = zeros
    elif reftype in ("gain", "readnoise"):
        ref.data = arrays[reftype]
    elif reftype == "flat":  # the science array only, as romancal's flat_field wants it
        sci = (slice(BORDER, -BORDER),) * 2
        ref.data, ref.dq, ref.err = arrays["flat"][sci], zeros[sci], np.zeros(shape, np.float32)[sci]
    elif reftype == "photom":
        for element, row in ref.phot_table.items():
            if row.get("photmjsr") is not None:
                row["pixelareasr"] = np.float64((PIXEL_SCALE / 206264.806) ** 2)
    elif reftype == "distortion":
        ref.meta.input_units = "pixel"
        ref.meta.output_units = "arcsec"
        ref.coordinate_distortion_transform = _distortion((shape[0] - 2 * BORDER - 1) / 2)
    elif reftype == "refpix":
        # rfft length of a channel's rows of 128 + 12 (padding) columns
        zero = np.zeros((shape[1] // 128, shape[0] * 140 // 2 + 1), np.complex128)
        ref.gamma, ref.zeta, ref.alpha = zero, zero.copy(), zero.copy()
    ref.validate()
    return ref


def write_exposure(out_dir, size=512, seed=1, detector="WFI01", optical_element="F158", refpix=False, **options):
    """Simulate and write ``<root>_uncal.asdf``, ``<root>_truth.asdf`` and ``refs/roman_*.asdf``.

    Returns ``{"uncal": path, "truth": path, "refs": {reftype: path}}``.
    """
    import asdf
    from astropy.time import Time, TimeDelta

    rdm = _rdm()
    sim = simulate(size=size, seed=seed, **options)
    os.makedirs(os.path.join(out_dir, "refs"), exist_ok=True)
    root = f"r0000101001001001001_0001_{detector.lower()}"
    paths = {"uncal": os.path.join(out_dir, f"{root}_uncal.asdf"),
             "truth": os.path.join(out_dir, f"{root}_truth.asdf"), "refs": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nres = len(sim["read_pattern"])
        raw = rdm.ScienceRawModel.create_fake_data(shape=(nres, size, size))
        raw.meta.filename = os.path.basename(paths["uncal"])
        exposure = raw.meta.exposure
        start = Time("2027-06-01T00:00:00")
        duration = sim["frame_time"] * sim["read_pattern"][-1][-1]
        exposure.type = "WFI_IMAGE"
        exposure.start_time = start
        exposure.end_time = start + TimeDelta(duration, format="sec")
        exposure.nresultants = nres
        exposure.frame_time = sim["frame_time"]
        exposure.exposure_time = duration
        exposure.effective_exposure_time = duration
        exposure.read_pattern = sim["read_pattern"]
        exposure.ma_table_name = "SIMULATED_6"
        exposure.ma_table_number = 1
        raw.meta.instrument.detector = detector
        raw.meta.instrument.optical_element = optical_element
        wcsinfo = raw.meta.wcsinfo
        wcsinfo.aperture_name = f"{detector}_FULL"
        wcsinfo.v2_ref, wcsinfo.v3_ref = V2V3_REF
        wcsinfo.ra_ref, wcsinfo.dec_ref, wcsinfo.roll_ref = 270.0, 66.0, 0.0
        wcsinfo.v3yangle, wcsinfo.vparity = -60.0, -1
        if "velocity_aberration" in raw.meta:
            raw.meta.velocity_aberration.scale_factor = 1.0
        raw.data = sim["resultants"]
        raw.amp33 = sim["amp33"]
        raw.validate()
        raw.save(paths["uncal"])
        for reftype in REFTYPES + (("refpix",) if refpix else ()):
            ref = _reference(reftype, sim["refs"], detector, optical_element, (size, size))
            path = os.path.join(out_dir, "refs", f"roman_{detector.lower()}_{reftype}.asdf")
            ref.save(path)
            paths["refs"][reftype] = path
    truth = dict(sim["truth"])
    truth["meta"] = {"size": size, "seed": seed, "read_pattern": sim["read_pattern"],
                     "frame_time": sim["frame_time"], "units": "DN/s"}
    asdf.AsdfFile(truth).write_to(paths["truth"])
    return paths
