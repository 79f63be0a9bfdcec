"""refpix: remove bias drifts tracked by the reference pixels on the detector border."""

from calpipe.detector import BORDER
from calpipe.kernels.refpix import correct_refpix
from calpipe.step import CalStep


class RefPixStep(CalStep):
    """Subtract per-channel, per-resultant bias drifts measured on the border pixels."""

    class_alias = "refpix"
    spec = """
    nchannels = integer(default=32, min=1)   # Amplifier channels across the detector
    """

    def process(self, input):
        model = self.open_for_update(input)
        correct_refpix(model.data, border=BORDER, nchannels=self.nchannels)
        return model
