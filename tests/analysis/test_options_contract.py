"""contracts/analysis_options.py: the one parser and rule set for the pre-registered [analysis] options."""
import pytest

from advlegit.contracts import analysis_options as ao


def test_parse_records_what_the_file_set_and_checks_each_value():
    opts = ao.parse_section({"rt_floor_ms": 150, "primary_contrast": ["gradreg_y", "normal"]}, "identify")
    assert opts.set_in_design == ("rt_floor_ms", "primary_contrast")
    assert opts.primary_contrast == ("gradreg_y", "normal") and opts.rt_floor_ms == 150.0
    assert opts.attention_threshold == ao.DEFAULTS["attention_threshold"]
    bad = [({"colour": 1}, r"analysis\.colour: unknown field"),
           ({"attention_threshold": 1.5}, r"analysis\.attention_threshold: must be a fraction"),
           ({"attention_threshold": True}, r"analysis\.attention_threshold: expected a number"),
           ({"attention_threshold": 0.5, "attention_min_pass_rate": 0.5}, r"given twice"),
           ({"primary_contrast": ["a", "a"]}, r"analysis\.primary_contrast: two different"),
           ({"primary_outcome": "rating"}, r"the identify task's outcome is target_hit")]
    for table, message in bad:
        with pytest.raises(ao.OptionError, match=message):
            ao.parse_section(table, "identify")
    assert ao.parse_section({"primary_outcome": "original_hit"}, "identify").primary_outcome == "original_hit"


def test_defenses_checked_against_the_study_and_one_reference_rule():
    with pytest.raises(ao.OptionError, match=r"reference_defense: 'ghost'"):
        ao.check_defenses(ao.AnalysisOptions(reference_defense="ghost"), ["normal", "adv"])
    with pytest.raises(ao.OptionError, match=r"primary_contrast: 'ghost'"):
        ao.check_defenses(ao.AnalysisOptions(primary_contrast=("adv", "ghost")), ["normal", "adv"])
    assert ao.reference_for(["zeta", "normal", "adv"]) == "normal"
    assert ao.reference_for(["zeta", "adv"]) == "adv"
    assert ao.reference_for(["zeta", "adv"], "zeta") == "zeta"
