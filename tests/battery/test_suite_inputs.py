"""Battery: bad suite values, names and output paths (issue 13, root causes 1, 4, 5, 6)."""

import pytest

from .harness import Case, check_case, tiny

VALIDATE = ["validate", "{suite}"]
RUN = ["run", "{suite}", "-o", "{tmp}/out", "-q"]


def _file(tmp):
    (tmp / "a-file").write_text("not a folder")


def _folder(tmp):
    (tmp / "a-folder").mkdir()


CASES = [
    # 1. a misspelt component in the shared configuration, with 2 or more variants
    Case("misspelt-loss-set", VALIDATE + ["--set", "train.loss=dcie"], 2, "unknown loss 'dcie'; did you mean 'dice'", suite=tiny()),
    Case("misspelt-loss-run", RUN + ["--set", "train.loss=dcie"], 2, "did you mean 'dice'", suite=tiny()),
    Case("misspelt-loss-file", VALIDATE, 2, "unknown loss 'cee'", suite=tiny().replace("batch_size = 4", 'batch_size = 4\nloss = "cee"')),
    Case("misspelt-architecture", VALIDATE + ["--set", "model.architecture=unte"], 2, "did you mean 'unet'", suite=tiny()),
    Case("misspelt-dataset", VALIDATE + ["--set", "dataset.name=shpaes"], 2, "did you mean 'shapes'", suite=tiny()),
    Case("misspelt-metric", VALIDATE + ["--set", 'eval.metrics=["mio"]'], 2, "did you mean 'miou'", suite=tiny()),
    Case("misspelt-optimizer", VALIDATE + ["--set", "train.optimizer.name=adamm"], 2, "did you mean 'adam", suite=tiny()),
    Case("misspelt-upsampler-in-ablate", VALIDATE, 2, "unknown upsampler 'bilnear'", suite=tiny(**{'"model.upsampler"': '["nearest", "bilnear"]'})),
    Case("misspelt-baseline-variant-only-own-problem", VALIDATE, 2, "1 problem", suite=tiny(
        **{'"model.upsampler"': '["nearest", "bilnear"]'}).replace('name = "tiny"', 'name = "tiny"\nbaseline = { "model.upsampler" = "bilnear" }')),
    Case("misspelt-shared-no-false-baseline-line", VALIDATE + ["--set", "train.loss=dcie"], 2, "1 problem",
         suite=tiny().replace('name = "tiny"', 'name = "tiny"\nbaseline = { "model.upsampler" = "bilinear" }')),
    Case("wrong-baseline-still-reported", VALIDATE, 2, "matches no variant",
         suite=tiny().replace('name = "tiny"', 'name = "tiny"\nbaseline = { "model.upsampler" = "bicubic" }')),
    # 4. suite names: one ordinary folder name
    Case("name-dot", VALIDATE + ["--set", "name='.'"], 2, "not '.' or '..'", suite=tiny()),
    Case("name-dotdot", VALIDATE + ["--set", "name='..'"], 2, "not '.' or '..'", suite=tiny()),
    Case("name-dotdot-run", RUN + ["--set", "name='..'"], 2, "not '.' or '..'", suite=tiny()),
    Case("name-slash", VALIDATE, 2, "without slashes", suite=tiny(name='"a/b"')),
    Case("name-backslash", VALIDATE, 2, "without slashes", suite=tiny(name='"a\\\\b"')),
    Case("name-nul", VALIDATE, 2, "control characters", suite=tiny(name='"a\\u0000b"')),
    Case("name-newline", VALIDATE, 2, "control characters", suite=tiny(name='"a\\nb"')),
    Case("name-escape", VALIDATE, 2, "control characters", suite=tiny(name='"a\\u001b[31mb"')),
    Case("name-too-long", VALIDATE, 2, "1 to 100 characters", suite=tiny(name='"' + "x" * 300 + '"')),
    Case("name-empty", VALIDATE, 2, "1 to 100 characters", suite=tiny(name='""')),
    Case("name-blank", VALIDATE, 2, "1 to 100 characters", suite=tiny(name='"   "')),
    Case("name-not-a-string", VALIDATE, 2, "got 3 (int)", suite=tiny(name="3")),
    # 5. output paths that cannot be written: named with their flag, before any work
    Case("run-output-is-a-file", ["run", "{suite}", "-o", "{tmp}/a-file", "-q"], 2, "cannot write results to", suite=tiny(), setup=_file),
    Case("run-output-unreachable", ["run", "{suite}", "-o", "/proc/segbench-nowhere", "-q"], 2, "give -o/--output a folder", suite=tiny()),
    Case("gate-junit-is-a-folder", ["gate", "{results}", "--baseline", "{tmp}/b.json", "--junit", "{tmp}/a-folder"], 2, "--junit",
         results=True, setup=_folder),
    Case("gate-markdown-is-a-folder", ["gate", "{results}", "--baseline", "{tmp}/b.json", "--markdown", "{tmp}/a-folder"], 2,
         "--markdown", results=True, setup=_folder),
    Case("gate-markdown-under-a-file", ["gate", "{results}", "--baseline", "{tmp}/b.json", "--markdown", "{tmp}/a-file/x.md"], 2,
         "cannot create the folder", results=True, setup=_file),
    Case("compare-markdown-is-a-folder", ["compare", "{results}", "{results}", "--markdown", "{tmp}/a-folder"], 2, "is a folder",
         results=True, setup=_folder),
    Case("baseline-save-to-a-folder", ["baseline", "save", "{results}", "-o", "{tmp}/a-folder"], 2, "is a folder", results=True, setup=_folder),
    Case("baseline-save-not-json", ["baseline", "save", "{results}", "-o", "{tmp}/b.txt"], 2, "valid: .json", results=True),
    Case("baseline-save-under-a-file", ["baseline", "save", "{results}", "-o", "{tmp}/a-file/b.json"], 2, "cannot create", results=True,
         setup=_file),
    Case("data-show-to-a-folder", ["data", "show", "{suite}", "-o", "{tmp}/a-folder"], 2, "is a folder", suite=tiny(), setup=_folder),
    Case("data-show-bad-extension", ["data", "show", "{suite}", "-o", "{tmp}/x.xyz"], 2, "unsupported file type '.xyz'", suite=tiny()),
    Case("data-show-no-extension", ["data", "show", "{suite}", "-o", "{tmp}/x"], 2, "unsupported file type", suite=tiny()),
    Case("data-export-into-a-file", ["data", "export", "{suite}", "--format", "coco", "{tmp}/a-file"], 2, "a-file", suite=tiny(), setup=_file),
    # 6. values that pass a type check but could never work
    Case("seed-too-large", VALIDATE + ["--set", "seeds=[0, 4294967296]"], 2, "from 0 to 4294967295", suite=tiny()),
    Case("seed-negative", VALIDATE + ["--set", "seeds=[-1, 0]"], 2, "from 0 to 4294967295", suite=tiny()),
    Case("lr-nan", VALIDATE + ["--set", "train.optimizer.lr=nan"], 2, "train.optimizer.lr: expected a finite number", suite=tiny()),
    Case("lr-inf", VALIDATE + ["--set", "train.optimizer.lr=inf"], 2, "train.optimizer.lr: expected a finite number", suite=tiny()),
    Case("lr-negative", VALIDATE + ["--set", "train.optimizer.lr=-0.1"], 2, "train.optimizer.lr", suite=tiny()),
    Case("weight-decay-inf", VALIDATE + ["--set", "train.optimizer.weight_decay=inf"], 2, "weight_decay", suite=tiny()),
    Case("clip-nan", VALIDATE + ["--set", "train.grad_clip_norm=nan"], 2, "train.grad_clip_norm: expected a number >= 0", suite=tiny()),
    Case("clip-inf", VALIDATE + ["--set", "train.grad_clip_norm=inf"], 2, "train.grad_clip_norm", suite=tiny()),
    Case("clip-negative", VALIDATE + ["--set", "train.grad_clip_norm=-1"], 2, "train.grad_clip_norm", suite=tiny()),
    Case("warmup-nan", VALIDATE + ["--set", "train.warmup_epochs=nan"], 2, "train.warmup_epochs", suite=tiny()),
    Case("warmup-above-epochs", VALIDATE + ["--set", "train.warmup_epochs=5"], 2, "at most train.epochs = 1", suite=tiny()),
    Case("epochs-absurd", VALIDATE + ["--set", "train.epochs=100000000"], 2, "at most 10000 epochs", suite=tiny()),
    Case("epochs-zero", VALIDATE + ["--set", "train.epochs=0"], 2, "train.epochs: expected an integer >= 1", suite=tiny()),
    Case("epochs-float", VALIDATE + ["--set", "train.epochs=1.5"], 2, "train.epochs: expected an integer >= 1", suite=tiny()),
    Case("batch-zero", VALIDATE + ["--set", "train.batch_size=0"], 2, "train.batch_size", suite=tiny()),
    Case("batch-above-dataset", VALIDATE + ["--set", "train.batch_size=1000"], 2, "larger than the 8 training images", suite=tiny()),
    Case("val-every-zero", VALIDATE + ["--set", "train.val_every=0"], 2, "train.val_every", suite=tiny()),
    Case("margin-nan", VALIDATE + ["--set", "stats.margin=nan"], 2, "stats.margin", suite=tiny()),
    Case("margin-inf", VALIDATE + ["--set", "stats.margin=inf"], 2, "stats.margin", suite=tiny()),
    Case("margin-zero", VALIDATE + ["--set", "stats.margin=0"], 2, "stats.margin", suite=tiny()),
    Case("alpha-one", VALIDATE + ["--set", "stats.alpha=1.5"], 2, "stats.alpha", suite=tiny()),
    Case("num-train-past-memory", VALIDATE + ["--set", "dataset.num_train=1000000000000"], 2, "lower num_train", suite=tiny()),
    Case("num-val-past-memory", VALIDATE + ["--set", "dataset.num_val=100000000000"], 2, "GiB", suite=tiny()),
    Case("image-size-huge", VALIDATE + ["--set", "dataset.image_size=100000"], 2, "image_size must be at most 1024", suite=tiny()),
    Case("image-size-tiny", VALIDATE + ["--set", "dataset.image_size=8"], 2, "image_size must be an integer >= 32", suite=tiny()),
    Case("adaptive-max-huge", VALIDATE + ["--set", "seeds={{min=2, max=100000}}"], 2, "seeds.max", suite=tiny()),
    Case("augment-hflip-2", VALIDATE + ["--set", "train.augment.hflip=2"], 2, "a probability between 0 and 1", suite=tiny()),
    Case("timeout-zero", VALIDATE + ["--set", "train.timeout_s=0"], 2, "train.timeout_s", suite=tiny()),
    Case("timeout-past-the-ceiling", VALIDATE + ["--set", "train.timeout_s=1e10"], 2, "train.timeout_s: expected a number of seconds > 0 "
         "and at most 2,592,000", suite=tiny()),
    Case("variant-and-grid-set-one-key", VALIDATE + ["--set", 'variants=[{{label="b", "model.upsampler"="bilinear"}}]'], 2,
         'variants[0].model.upsampler: [ablate] sets "model.upsampler" in every variant', suite=tiny()),
    # usage
    Case("unknown-command", ["frobnicate"], 2, "invalid choice"),
    Case("workers-zero", RUN + ["--executor", "process", "--workers", "0"], 2, "--workers must be an integer >= 1", suite=tiny()),
    Case("unknown-executor", RUN + ["--executor", "slurmm"], 2, "unknown executor 'slurmm'", suite=tiny()),
    Case("missing-suite-file", ["validate", "{tmp}/nope.toml"], 2, "nope.toml"),
    Case("suite-is-a-folder", ["validate", "{tmp}"], 2, "is a folder, not a suite file"),
    Case("suite-not-utf8", VALIDATE, 2, "cannot be read", setup=lambda tmp: (tmp / "suite.toml").write_bytes(b"name = \"\xff\xfe\"\n")),
    Case("suite-not-toml", VALIDATE, 2, "suite.toml", suite="name = [unclosed\n"),
    Case("list-unknown-kind", ["list", "upsamplerz"], 2, "unknown component kind"),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case, tmp_path):
    check_case(case, tmp_path)


EXITING_LOSS = '''
import sys

from segbench import hookimpl


def build_exiting(mode, num_classes, ignore_index):
    """A loss that calls sys.exit on its first call."""
    def loss(logits, target):
        sys.exit(3)
    return loss


@hookimpl
def segbench_losses(register):
    register.add_loss("exiting", build_exiting)
'''

EXITING_IMPORT = "import sys\nsys.exit(4)\n"


def _plugin(name, text):
    def write(tmp):
        (tmp / name).write_text(text)
    return write


PLUGIN_EXIT_CASES = [
    Case("sys-exit-in-preflight", ["validate", "{suite}", "-p", "{tmp}/exiting.py", "--set", "train.loss=exiting"], 2,
         "SystemExit", suite=tiny(), setup=_plugin("exiting.py", EXITING_LOSS)),
    Case("sys-exit-in-preflight-of-run", ["run", "{suite}", "-o", "{tmp}/out", "-q", "-p", "{tmp}/exiting.py", "--set",
                                          "train.loss=exiting"], 2, "SystemExit", suite=tiny(), setup=_plugin("exiting.py", EXITING_LOSS)),
    Case("sys-exit-at-plugin-import", ["list", "-p", "{tmp}/exits.py"], 2, "sys.exit(4)", setup=_plugin("exits.py", EXITING_IMPORT)),
]


@pytest.mark.parametrize("case", PLUGIN_EXIT_CASES, ids=str)
def test_plugin_exit_case(case, tmp_path):
    check_case(case, tmp_path)
