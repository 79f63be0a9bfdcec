import json

import pytest

from calpipe.associations.asn import AsnError, load_asn, make_asn, member_paths, write_asn


def _asn():
    return make_asn(
        [{"name": "cp00001-o001_t001_wfi_f158", "members": ["a_uncal.asdf", {"expname": "b_uncal.asdf", "exptype": "SCIENCE"}]}],
        asn_id="a3001", program=1, target="t001", pool="pool.csv",
    )


def test_make_write_load_roundtrip(tmp_path):
    asn = _asn()
    assert asn["program"] == "00001"
    assert [m["exptype"] for m in asn["products"][0]["members"]] == ["science", "science"]
    path = write_asn(asn, tmp_path / "sub" / "x_asn.json")
    assert load_asn(path) == asn
    assert [p.name for p in member_paths(asn, path)[0]] == ["a_uncal.asdf", "b_uncal.asdf"]
    assert member_paths(asn, path)[0][0].parent == (tmp_path / "sub").resolve()
    # No temporary files left behind.
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["x_asn.json"]


def test_load_normalises_exptype_and_keeps_paths(tmp_path):
    asn = _asn()
    asn["products"][0]["members"][0]["exptype"] = "Science"
    asn["products"][0]["members"][1]["expname"] = "../raw/b_uncal.asdf"
    p = tmp_path / "asn.json"
    p.write_text(json.dumps(asn))
    got = load_asn(p)
    assert got["products"][0]["members"][0]["exptype"] == "science"
    assert got["products"][0]["members"][1]["expname"] == "../raw/b_uncal.asdf"


def test_mapping_products():
    asn = make_asn({"p1": ["x.asdf"]}, asn_id="a1", program="00002", target="1")
    assert asn["products"] == [{"name": "p1", "members": [{"expname": "x.asdf", "exptype": "science"}]}]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda a: a.pop("products"), "missing required key 'products'"),
        (lambda a: a.update(products=[]), "$.products: needs at least 1"),
        (lambda a: a["products"][0]["members"][1].pop("expname"), "$.products[0].members[1]: missing required key 'expname'"),
        (lambda a: a["products"][0].update(name=3), "$.products[0].name: expected string, got int"),
        (lambda a: a.update(asn_id=""), "$.asn_id: must not be empty"),
        (lambda a: a["products"][0]["members"][0].update(exptype=True), "expected string, got bool"),
    ],
)
def test_invalid_files_give_one_line(tmp_path, mutate, expected):
    asn = _asn()
    mutate(asn)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(asn))
    with pytest.raises(AsnError) as info:
        load_asn(p)
    msg = str(info.value)
    assert "\n" not in msg and str(p) in msg and expected in msg


def test_unreadable_files(tmp_path):
    with pytest.raises(AsnError, match="not found"):
        load_asn(tmp_path / "nope.json")
    p = tmp_path / "x.json"
    p.write_text("{ not json")
    with pytest.raises(AsnError, match=r"not valid JSON \(line 1"):
        load_asn(p)
    p.write_text("[1, 2]")
    with pytest.raises(AsnError, match=r"\$: expected object, got list"):
        load_asn(p)
    assert issubclass(AsnError, ValueError)


def test_write_refuses_invalid(tmp_path):
    asn = _asn()
    del asn["target"]
    with pytest.raises(AsnError, match="target"):
        write_asn(asn, tmp_path / "x.json")
    assert not list(tmp_path.iterdir())
