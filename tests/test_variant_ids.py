"""Variant ids are a contract: results folders resume by them and baselines match them.
A new component parameter must not change the ids of suites that never set it
(``id_neutral`` at registration), and the shipped suites keep their ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segbench.components import Registrar
from segbench.errors import PluginError
from segbench.plugins import load_catalogue
from segbench.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = json.loads((Path(__file__).parent / "data" / "shipped_suite_ids.json").read_text())


@pytest.mark.parametrize("suite", sorted(EXPECTED))
def test_the_shipped_suites_keep_their_variant_ids(suite):
    """Ids recorded when the suites were last run; a change here orphans every results
    folder and baseline made with them, so it has to be deliberate (update the file)."""
    assert [v.id for v in load_suite(ROOT / suite, load_catalogue).variants] == EXPECTED[suite]


def _factory(out_channels, make_upsampler, *, width: int = 8, extra: bool = False):
    return None


def _component(id_neutral=()):
    register = Registrar("test", "1.0")
    register.add_architecture("arch", _factory, id_neutral=id_neutral)
    return register.components[0]


def test_a_neutral_parameter_at_its_default_is_left_out_and_set_is_kept():
    neutral = _component(("extra",))
    assert neutral.resolve_params({}) == {"width": 8}
    assert neutral.resolve_params({"extra": False}) == {"width": 8}  # writing the default changes nothing
    assert neutral.resolve_params({"extra": True}) == {"width": 8, "extra": True}
    assert neutral.resolve_params({"extra": 0}) == {"width": 8, "extra": 0}  # not the default: a wrong type is kept (and refused)
    assert _component().resolve_params({}) == {"width": 8, "extra": False}


@pytest.mark.parametrize("id_neutral", [("missing",), "extra"])
def test_a_neutral_name_that_is_not_a_parameter_is_refused_at_registration(id_neutral):
    with pytest.raises(PluginError, match="id_neutral"):
        _component(id_neutral)


FCN_SUITE = """
name = "neutral"
seeds = [0]

[model]
architecture = "fcn"
encoder = "lite"
upsampler = "transposed"
"""

# Settings added for the reference recipes, each written out at its default, and where
# its name would land in the resolved configuration (and so in the id) were it not neutral.
EXPLICIT_DEFAULTS = [
    ({"model.upsampler": {"name": "transposed", "bias": True}}, lambda c: c["model"]["upsampler"]["params"], "bias"),
    ({"model.final_upsampling": "suite"}, lambda c: c["model"]["architecture"]["params"], "final_upsampling"),
    ({"model.score_init": "default"}, lambda c: c["model"]["architecture"]["params"], "score_init"),
    ({"train.loss": {"name": "ce", "average": "valid"}}, lambda c: c["train"]["loss"]["params"], "average"),
]


@pytest.mark.parametrize("overrides, where, name", EXPLICIT_DEFAULTS, ids=lambda o: ",".join(o) if isinstance(o, dict) else "")
def test_a_new_setting_written_at_its_default_leaves_the_variant_id_alone(write_suite, overrides, where, name):
    path = write_suite(FCN_SUITE)
    plain = load_suite(path, load_catalogue).variants[0]
    explicit = load_suite(path, load_catalogue, overrides=overrides).variants[0]
    assert explicit.id == plain.id and name not in where(explicit.config)
