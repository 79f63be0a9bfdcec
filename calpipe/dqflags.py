"""Data-quality bit values shared by JWST and Roman (uint32 pixel DQ; group DQ uses the low bits)."""

DO_NOT_USE = 1
SATURATED = 2
JUMP_DET = 4
DROPOUT = 8
GW_AFFECTED_DATA = 16
PERSISTENCE = 32
AD_FLOOR = 64
OUTLIER = 128
UNRELIABLE_ERROR = 256
NON_SCIENCE = 512
DEAD = 1024
HOT = 2048
WARM = 4096
LOW_QE = 8192
TELEGRAPH = 32768
NONLINEAR = 65536
BAD_REF_PIXEL = 131072
NO_FLAT_FIELD = 262144
NO_GAIN_VALUE = 524288
NO_LIN_CORR = 1048576
NO_SAT_CHECK = 2097152
UNRELIABLE_BIAS = 4194304
UNRELIABLE_DARK = 8388608
UNRELIABLE_SLOPE = 16777216
UNRELIABLE_FLAT = 33554432
UNRELIABLE_RESET = 268435456
OTHER_BAD_PIXEL = 1073741824
REFERENCE_PIXEL = 2147483648

pixel = {
    name: value
    for name, value in globals().items()
    if name.isupper() and isinstance(value, int)
}
"""Every flag by name."""

group = {name: value for name, value in pixel.items() if value < 256}
"""The flags that fit the uint8 group DQ array."""


def describe(value):
    """Names of the flags set in one DQ value, e.g. ``describe(3) == ['DO_NOT_USE', 'SATURATED']``."""
    return [name for name, bit in pixel.items() if int(value) & bit]
