"""stereo_lit/options.py: the module's option groups check their values, naming the key, the value and what is expected."""

from __future__ import annotations

import pytest

from stereo_lit.io.video_writer import EncoderOptions
from stereo_lit.options import DisparityOptions, EvaluationOptions, FitOptions, OutputOptions, option_group
from stereo_lit.stereo.edges import EdgeOptions


@pytest.mark.parametrize(
    ("cls", "fields", "message"),
    [
        (DisparityOptions, {"max_disparity_pct": 0}, r"model\.disparity\.max_disparity_pct must be in \(0, 20\].*got 0"),
        (DisparityOptions, {"convergence": 1.5}, r"model\.disparity\.convergence must be in \[0, 1\].*got 1\.5"),
        (DisparityOptions, {"range_smoothing": -2}, r"model\.disparity\.range_smoothing must be null or >= 0.*got -2"),
        (DisparityOptions, {"edges": {"dilate_px": [-1, 0]}}, r"model\.disparity\.edges: .*dilate_px"),
        (OutputOptions, {"layouts": ["sbs", "3d"]}, r"model\.output\.layouts must be a list of .*got \['3d'\]"),
        (OutputOptions, {"naming": "kodi"}, r"model\.output\.naming must be one of \['plain', 'player'\], got 'kodi'"),
        (OutputOptions, {"encoder": {"codec": "vp9"}}, r"model\.output\.encoder\.codec must be one of .*got 'vp9'"),
        (OutputOptions, {"vr180": {"hfov_deg": 200}}, r"model\.output\.vr180\.hfov_deg must be in \(0, 180\)"),
        (EvaluationOptions, {"protocol": "oracle"}, r"model\.evaluation\.protocol must be one of .*got 'oracle'"),
        (FitOptions, {"learning_rate": 0}, r"model\.fit\.learning_rate must be > 0, got 0"),
        (FitOptions, {"weight_decay": -0.1}, r"model\.fit\.weight_decay must be >= 0, got -0\.1"),
        (FitOptions, {"lora_every_n_steps": 2.5}, r"model\.fit\.lora_every_n_steps must be a whole number .*got 2\.5"),
    ],
)
def test_each_group_rejects_a_bad_value_naming_the_key(cls: type, fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cls(**fields)
    with pytest.raises(ValueError, match=message):  # the same from a dict, as the module takes it
        option_group(fields, cls, cls.__name__)


def test_a_dict_from_python_gives_the_group_with_its_nested_options() -> None:
    output = option_group({"dir": "x", "layouts": ["tb"], "encoder": {"codec": "h265", "crf": 20}}, OutputOptions, "output")
    assert (output.dir, output.layouts, output.encoder) == ("x", ["tb"], EncoderOptions(codec="h265", crf=20))
    disparity = option_group({"edges": {"dilate_px": 2}}, DisparityOptions, "disparity")
    assert disparity.edges == EdgeOptions(dilate_px=(2, 2)) and disparity.max_disparity_pct == 2.0
    assert OutputOptions().layouts == ["right", "sbs", "anaglyph"]
    with pytest.raises(ValueError, match=r"model\.output has no key 'layout'; its keys: \['dir', 'layouts'"):
        option_group({"layout": ["sbs"]}, OutputOptions, "output")


def test_the_module_reads_its_groups_into_the_attributes_the_callbacks_use(tmp_path) -> None:
    from stereo_lit.module import StereoLitModule

    module = StereoLitModule(
        disparity={"max_disparity_pct": 4.0, "convergence": 0.0, "shot_aware": False, "range_smoothing": 12.0},
        output=OutputOptions(dir=str(tmp_path), layouts=["sbs"], naming="player", skip_finished=False),
        evaluation={"protocol": "both", "align_estimated_depth": False, "methods_on_val": True},
        fit={"learning_rate": 3e-4, "weight_decay": 0.01, "lora_every_n_steps": 7},
    )
    policy = module.policy
    assert (policy.max_disparity_pct, policy.convergence, policy.shot_aware, policy.range_smoothing) == (4.0, 0.0, False, 12.0)
    assert (module.output_dir, module.layouts, module.naming, module.skip_finished) == (tmp_path, ["sbs"], "player", False)
    assert (module.real_footage.protocol, module.align_estimated_depth, module.eval_methods_on_val) == ("both", False, True)
    assert (module.learning_rate, module.weight_decay, module.lora_every_n_steps) == (3e-4, 0.01, 7)
