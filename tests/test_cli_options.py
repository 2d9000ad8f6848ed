"""One definition of each shared option, one builder of the StyleConfig, for every command."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from audiostyle import get_preset
from audiostyle_cli.app import app
from audiostyle_cli.options import CREATIVE, ENGINE, WEIGHTS, build_config, shared

COMMANDS = ["stylize", "texture", "batch"]


def help_of(command: str) -> str:
    result = CliRunner().invoke(app, [command, "--help"], prog_name="audiostyle", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_stylizing_command_takes_the_engine_options(command):
    text = help_of(command)
    for option in ("--preset", "--iterations", "--filters", "--kernel-widths", "--network", "--seed", "--device",
                   "--sample-rate", "--n-fft", "--hop-length", "--max-duration", "--overwrite", "--quiet", "--debug"):
        assert option in text, (command, option)


def test_only_commands_with_a_content_take_its_options():
    assert "--content-weight" in help_of("stylize") and "--content-weight" in help_of("batch")
    assert "--strength" in help_of("stylize")
    assert "--content-weight" not in help_of("texture") and "--strength" not in help_of("texture")


def test_the_builder_applies_given_options_over_the_preset():
    config = build_config("fast", iterations=7, seed=None, kernel_widths="3,3:3", device="cpu", strength=0.8)
    preset = get_preset("fast")
    assert (config.iterations, config.seed, config.device, config.strength) == (7, preset.seed, "cpu", 0.8)
    assert (config.kernel_widths, config.kernel_dilations) == ((3, 3), (1, 3))


def test_shared_hands_the_values_and_the_flags_to_the_command():
    seen = {}

    @shared(ENGINE, WEIGHTS, CREATIVE)
    def command(name: str = "x", *, given):
        seen.update(name=name, given=given)

    defaults = {p.name: p.default for group in (ENGINE, WEIGHTS, CREATIVE) for p in group}
    command(name="y", **{**defaults, "iterations": 5, "strength": 0.25})
    given = seen["given"]
    assert seen["name"] == "y" and given.get("iterations") == 5
    assert given.flags["iterations"] == "--iterations" and given.flags["n_fft"] == "--n-fft"
    config = given.config()
    assert config.iterations == 5 and config.strength == 0.25
