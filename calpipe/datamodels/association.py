"""The models of an association, loaded one at a time (stpipe's model container)."""

import os

import asdf
from stpipe import library as stpipe_models

from calpipe import datamodels
from calpipe.associations.asn import AsnError, load_asn
from calpipe.datamodels import DataModelError


def _group_id(observation):
    """Exposures of one visit share a group id (they share a pointing for relative alignment)."""
    keys = ("program", "observation", "visit", "exposure")
    if not observation or not all(k in observation for k in keys):
        raise stpipe_models.NoGroupID()
    return "{program:05d}{observation:03d}{visit:03d}_{exposure:04d}".format(
        **{k: int(observation[k]) for k in keys}
    )


class ModelLibrary(stpipe_models.AbstractModelLibrary):
    """An association's members as calpipe models."""

    def __init__(self, init, **kwargs):
        from_file = isinstance(init, (str, os.PathLike))
        self._folder = os.path.dirname(os.path.abspath(init)) if from_file else None
        super().__init__(init, **kwargs)

    def member_paths(self):
        """Each member's file, resolved against the association file's folder."""
        members = self.asn["products"][0]["members"]
        return [os.path.join(self._folder or "", m["expname"]) for m in members]

    @property
    def crds_observatory(self):
        return "roman"

    def _datamodels_open(self, filename, **kwargs):
        return datamodels.open(filename)

    @classmethod
    def _load_asn(cls, filename):
        try:
            return load_asn(filename)
        except AsnError as err:
            raise DataModelError(str(err)) from None

    def _filename_to_group_id(self, filename):
        try:
            with asdf.open(filename, lazy_load=True) as af:
                return _group_id(af.tree.get("meta", {}).get("observation"))
        except (OSError, ValueError) as err:
            raise DataModelError(f"{filename}: cannot read association member ({err})") from None

    def _model_to_group_id(self, model):
        return _group_id(model.meta.get("observation") and model.meta.observation.to_dict())
