"""Battery: `--set` on every key of a suite, and `-p` paths (issue 13, root causes 8 and 10).

Each row runs in its own working directory, ``{tmp}/cwd``, apart from the suite's folder
``{tmp}``: so a row tells a path read from the current directory from one read from the
suite's folder.
"""

import pytest

from .harness import Case, check_case, tiny

VALIDATE = ["validate", "{suite}"]
SUITE = tiny()

PLUGIN = '''
import torch.nn as nn
from segbench import hookimpl


def local_up(in_channels, out_channels, scale_factor):
    """Nearest upsampling, from a local file."""
    return nn.Upsample(scale_factor=scale_factor, mode="nearest")


@hookimpl
def segbench_upsamplers(register):
    register.add_upsampler("local_up", local_up)
'''
WITH_LOCAL = ["--set", 'ablate."model.upsampler"=["nearest","local_up"]']


def set_(*pairs):
    """validate with ``--set PAIR`` each (braces doubled: the harness formats argv)."""
    return VALIDATE + [arg for pair in pairs for arg in ("--set", pair.replace("{", "{{").replace("}", "}}"))]


def plugin_in(*folders):
    def setup(tmp):
        for folder in folders:
            (tmp / folder).mkdir(exist_ok=True)
            (tmp / folder / "plug.py").write_text(PLUGIN)
    return setup


def empty_module(tmp):
    (tmp / "cwd" / "empty.py").write_text("x = 1\n")


def folder_in_cwd(tmp):
    (tmp / "cwd" / "pkg").mkdir()


CASES = [
    # 8. every top-level key is honoured (validate shows it) ...
    Case("set-name", set_("name=quick"), 0, "suite quick (", suite=SUITE),
    Case("set-seeds", set_("seeds=[5,6,7]"), 0, "2 variant(s) x 3 seed(s) [5, 6, 7]", suite=SUITE),
    Case("set-seeds-adaptive", set_("seeds={min=2,max=6}"), 0, "x 2 to 6 seeds", suite=SUITE),
    Case("set-seeds-adaptive-key", set_("seeds.max=8"), 0, "x 2 to 8 seeds", suite=tiny(seeds="{ min = 2, max = 4 }")),
    Case("set-baseline-label", set_("baseline=upsampler=bilinear"), 0, "upsampler=bilinear  (baseline)", suite=SUITE),
    Case("set-baseline-dotted", set_('baseline."model.upsampler"=bilinear'), 0, "upsampler=bilinear  (baseline)", suite=SUITE),
    Case("set-baseline-table", set_('baseline={"model.upsampler"="bilinear"}'), 0, "upsampler=bilinear  (baseline)", suite=SUITE),
    Case("set-description-checked", set_("description=3"), 2, "description: expected a string, got 3", suite=SUITE),
    Case("set-ablate-factor-quoted", set_('ablate."model.upsampler"=["transposed"]'), 0, "upsampler=transposed  (baseline)", suite=SUITE),
    Case("set-ablate-factor-bare", set_('ablate.model.upsampler=["transposed"]'), 0, "upsampler=transposed  (baseline)", suite=SUITE),
    Case("set-ablate-new-factor", set_('ablate."train.optimizer.lr"=[0.001,0.01]'), 0, "4 variant(s)", suite=SUITE),
    Case("set-ablate-whole", set_("ablate={}"), 0, "base  (baseline)", suite=SUITE),
    Case("set-variants-whole", set_("ablate={}", 'variants=[{label="mine","model.upsampler"="bilinear"}]'), 0, "mine  (baseline)",
         suite=SUITE),
    Case("set-stats-margin", set_("stats.margin=0.05"), 0, "equivalence margin ±0.05", suite=SUITE),
    Case("set-stats-alpha", set_("stats.alpha=0.1"), 0, "alpha 0.1,", suite=SUITE),
    Case("set-gate-rules-checked", set_('gate.rules=["mio:max_drop=0.01"]'), 2, "unknown metric 'mio'; did you mean 'miou'", suite=SUITE),
    Case("set-gate-rules-bad-syntax", set_('gate.rules=["miou:max_dorp=0.01"]'), 2, "gate.rules[0]", suite=SUITE),
    Case("set-plugins-relative-to-suite", set_('plugins=["plug.py"]') + WITH_LOCAL, 0, "upsampler=local_up", suite=SUITE,
         setup=plugin_in(".")),
    Case("set-section-key", set_("train.loss=dice", 'eval.metrics=["dice"]'), 0, "dice against the baseline", suite=SUITE),
    Case("set-section-whole", set_('eval={metrics=["dice","miou"]}'), 0, "dice against the baseline", suite=SUITE),
    # ... or refused with exit 2, naming the key and what would be valid
    Case("set-table-to-number", set_("train=1"), 2, "--set train: `train` is a table; set one of its keys, e.g. train.epochs=1",
         suite=SUITE),
    Case("set-model-to-text", set_("model=unet"), 2, "`model` is a table", suite=SUITE),
    Case("set-ablate-to-list", set_('ablate=["nearest"]'), 2, "`ablate` is a table", suite=SUITE),
    Case("set-gate-to-text", set_("gate=strict"), 2, "`gate` is a table", suite=SUITE),
    Case("set-unknown-top", set_("sedes=[1]"), 2, "--set sedes: unknown key sedes; did you mean seeds?", suite=SUITE),
    Case("set-missing-section", set_("epochs=1"), 2, "did you mean train.epochs?", suite=SUITE),
    Case("set-unknown-section", set_("training.epochs=1"), 2, "--set training.epochs: unknown key training", suite=SUITE),
    Case("set-unknown-train-key", set_("train.epoch=1"), 2, "did you mean train.epochs?", suite=SUITE),
    Case("set-unknown-stats-key", set_("stats.marign=0.1"), 2, "did you mean stats.margin?", suite=SUITE),
    Case("set-unknown-gate-key", set_("gate.rule=[]"), 2, "unknown key gate.rule", suite=SUITE),
    Case("set-unknown-ablate-key", set_("ablate.upsampler=[1]"), 2, "does not name a setting", suite=SUITE),
    Case("set-unknown-adaptive-key", set_("seeds.maximum=8"), 2, "seeds.maximum", suite=tiny(seeds="{ min = 2, max = 4 }")),
    Case("set-into-name", set_("name.first=x"), 2, "`name` is 'tiny' (str) in the suite, so it has no key 'first'", suite=SUITE),
    Case("set-into-seed-list", set_("seeds.min=3"), 2, "`seeds` is [0, 1] (list) in the suite", suite=SUITE),
    Case("set-into-variants", set_("variants.label=x"), 2, "set it whole, e.g. variants=[", suite=SUITE),
    Case("set-into-plugins", set_("plugins.first=x"), 2, "`plugins` is not a table", suite=SUITE),
    Case("set-overridden-by-grid", set_("model.upsampler=bilinear"), 2, "every variant sets model.upsampler itself", suite=SUITE),
    Case("set-param-overridden-by-grid", set_("model.upsampler.kernel_size=2"), 2, "every variant sets model.upsampler", suite=SUITE),
    Case("set-bad-key-syntax", set_("train..epochs=1"), 2, "not a key", suite=SUITE),
    Case("set-bad-key-space", set_("train epochs=1"), 2, "not a key", suite=SUITE),
    Case("set-bad-toml-list", set_("seeds=[0,1"), 2, "is not a TOML value", suite=SUITE),
    Case("set-bad-toml-table", set_("train={epochs=1"), 2, "is not a TOML value", suite=SUITE),
    Case("set-bad-toml-string", set_('name="quick'), 2, "is not a TOML value", suite=SUITE),
    Case("set-no-value", set_("train.epochs="), 2, "no value", suite=SUITE),
    Case("set-no-equals", set_("train.epochs"), 2, "expected KEY=VALUE", suite=SUITE),
    Case("set-no-key", set_("=1"), 2, "expected KEY=VALUE", suite=SUITE),
    Case("set-two-values", set_("train.epochs=1\nname=2"), 2, "one TOML value", suite=SUITE),
    Case("set-wrong-type-seed", set_('seeds=["a"]'), 2, "seeds[0]", suite=SUITE),
    Case("set-several-at-once", set_("train=1", "sedes=1"), 2, "2 problems", suite=SUITE),
    # 10. -p is read from the current directory; the suite's own plugins from its folder
    Case("p-relative-to-cwd", VALIDATE + ["-p", "plug.py"] + WITH_LOCAL, 0, "upsampler=local_up", suite=SUITE, setup=plugin_in("cwd")),
    Case("p-dot-slash", VALIDATE + ["-p", "./plug.py"] + WITH_LOCAL, 0, "upsampler=local_up", suite=SUITE, setup=plugin_in("cwd")),
    Case("p-absolute", VALIDATE + ["-p", "{tmp}/cwd/plug.py"] + WITH_LOCAL, 0, "upsampler=local_up", suite=SUITE, setup=plugin_in("cwd")),
    Case("p-not-from-suite-folder", VALIDATE + ["-p", "plug.py"] + WITH_LOCAL, 2, "cwd/plug.py)", suite=SUITE, setup=plugin_in(".")),
    Case("p-missing", VALIDATE + ["-p", "nope.py"], 2, 'plugin file "nope.py" does not exist (looked at', suite=SUITE),
    Case("p-missing-in-folder", VALIDATE + ["-p", "sub/nope.py"], 2, "cwd/sub/nope.py", suite=SUITE),
    Case("p-directory", VALIDATE + ["-p", "pkg/"], 2, 'plugin "pkg/" is a directory', suite=SUITE, setup=folder_in_cwd),
    Case("p-no-hooks", VALIDATE + ["-p", "empty.py"], 2, 'empty.py" implements no segbench hook', suite=SUITE, setup=empty_module),
    Case("p-empty", VALIDATE + ["-p", ""], 2, "empty string", suite=SUITE),
    Case("p-missing-module", VALIDATE + ["-p", "sbtest_no_such_module"], 2, "not found", suite=SUITE),
    Case("suite-plugin-relative-to-suite", VALIDATE + WITH_LOCAL, 0, "upsampler=local_up", suite='plugins = ["plug.py"]\n' + SUITE,
         setup=plugin_in(".")),
    Case("suite-plugin-not-from-cwd", VALIDATE + WITH_LOCAL, 2, 'plugin file "plug.py" does not exist', suite='plugins = ["plug.py"]\n' + SUITE,
         setup=plugin_in("cwd")),
    Case("list-p-relative-to-cwd", ["list", "upsamplers", "-p", "plug.py"], 0, "local_up", setup=plugin_in("cwd")),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case, tmp_path, monkeypatch):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    check_case(case, tmp_path)
