"""An unknown neutral target names the valid choices (issue #14 item 8)."""
import pytest


def test_unknown_target_lists_the_choices(anny_lite_template):
    from bodydata.neutral.neutralize import NeutralizeError, load_target

    with pytest.raises(NeutralizeError, match=r"target 'smpl': not 'anny', 'scape' or an existing mesh file"):
        load_target("smpl", anny_lite_template)
