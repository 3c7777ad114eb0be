import pytest

from robot.registry import Registry, UnknownNameError, did_you_mean


def test_did_you_mean_names_the_nearest_choice_or_nothing():
    assert did_you_mean("realsens", ["opencv", "realsense"]) == "; did you mean 'realsense'?"
    assert did_you_mean("zzzz", ["opencv", "realsense"]) == ""


def test_registry_builds_by_name_and_lazily_imports_string_targets():
    reg: Registry[object] = Registry("widget")
    reg.register("ordered", "collections:OrderedDict", config="dataclasses:dataclass")
    reg.register("plain", dict)
    assert reg.names() == ["ordered", "plain"]
    assert "plain" in reg and "other" not in reg
    assert type(reg.build("ordered", a=1)).__name__ == "OrderedDict"
    assert reg.build("plain", a=1) == {"a": 1}
    assert reg.entry("plain").config_class() is None


def test_unknown_name_suggests_the_nearest_and_lists_the_rest():
    reg: Registry[object] = Registry("arm driver")
    reg.register("so101", dict)
    reg.register("ur", dict)
    with pytest.raises(UnknownNameError) as err:
        reg.build("so10")
    assert str(err.value) == (
        "unknown arm driver 'so10'; did you mean 'so101'? (available: ['so101', 'ur'])"
    )
    assert err.value.valid == ["so101", "ur"]


def test_a_name_registered_twice_is_refused():
    reg: Registry[object] = Registry("camera")
    reg.register("opencv", dict)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("opencv", dict)
