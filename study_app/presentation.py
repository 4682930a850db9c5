"""How trials are shown, for every task type: the design file's `[presentation]` section.

The browser's trial runner (static/js/task.js with js/present.js, js/noise.js, js/display.js) applies it
and reports what it measured with each answer; responses.py checks those values against it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from advlegit.contracts.validation import ValidationError, build, spec

MASKS = ("none", "blank", "noise")
MAX_MS = 60_000  # no phase of a trial lasts longer than a minute
TIMEOUT_RESPONSE = "timeout"  # what the runner sends when the response window passes without an answer
CONFIDENCE_LEVELS = (1, 2, 3, 4)


class PresentationError(ValueError):
    """A [presentation] problem; the message names the field."""


@dataclass
class Presentation:
    fixation_ms: int = spec(0, ge=0, le=MAX_MS)  # a fixation cross this long before each image; 0 = none
    exposure_ms: int = spec(0, ge=0, le=MAX_MS)  # how long the image stays up; 0 = until answered
    mask: str = spec("none", choices=MASKS)  # none | blank | noise: what replaces the image after a timed exposure
    mask_ms: int = spec(0, ge=0, le=MAX_MS)  # how long the mask stays up (needs exposure_ms > 0 and a mask)
    # answers later than this (counted from image onset, like rt_ms) are timed out; 0 = no limit
    response_window_ms: int = spec(0, ge=0, le=10 * MAX_MS)
    min_refresh_hz: float = spec(0.0, ge=0, le=1000)  # displays measured slower than this are not started; 0 = any
    confidence: bool = False  # ask "how sure are you?" (1-4) after each answer
    fullscreen: bool = False  # trials run in full screen; exits are counted per trial
    min_viewport_width: int = spec(0, ge=0, le=10_000)  # CSS pixels; narrower windows are not started; 0 = any
    min_viewport_height: int = spec(0, ge=0, le=10_000)  # CSS pixels; lower windows are not started; 0 = any

    def __post_init__(self) -> None:
        """The timing fits together (each value's own range is its field's rule, contracts/validation.py)."""
        if self.mask != "none" and not self.timed:
            raise ValidationError("mask", "a mask follows a timed exposure; set exposure_ms > 0 or mask = \"none\"")
        if self.mask != "none" and self.mask_ms == 0:
            raise ValidationError("mask_ms", f"the {self.mask} mask needs a duration > 0")
        if self.mask == "none" and self.mask_ms:
            raise ValidationError("mask_ms", "set only with mask = \"blank\" or \"noise\"")
        shown = self.exposure_ms + self.mask_ms
        if self.response_window_ms and self.timed and self.response_window_ms < shown:
            raise ValidationError("response_window_ms", f"counted from image onset, so it must be at least "
                                                        f"exposure_ms + mask_ms ({shown})")

    @property
    def timed(self) -> bool:
        return self.exposure_ms > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Presentation:
        """A stored design's section; studies created before [presentation] existed get the defaults
        (until answered, no mask, no window), which is how they were shown."""
        return cls(**(d or {}))


KEYS = tuple(f.name for f in fields(Presentation))


def parse_section(tbl: dict[str, Any]) -> Presentation:
    return build(Presentation, tbl, "presentation", error=PresentationError)


def display_problem(p: Presentation, refresh_hz: Any, width: Any, height: Any) -> str | None:
    """Why this display cannot start the study (a sentence for the participant), or None.

    The values are what the instructions page measured; missing ones mean the page's script did not run.
    Called in a request: the sentence is in the study's language."""
    from flask_babel import gettext as _

    needs_viewport = p.min_viewport_width or p.min_viewport_height
    if not (p.min_refresh_hz or needs_viewport):
        return None

    def num(v: Any) -> float | None:
        try:
            x = float(v)
        except (TypeError, ValueError):
            return None
        return x if x == x and x >= 0 else None  # NaN and negatives are not measurements

    hz, w, h = num(refresh_hz), num(width), num(height)
    if (p.min_refresh_hz and hz is None) or (needs_viewport and (w is None or h is None)):
        return _("Your browser did not report its screen size and refresh rate. This study needs JavaScript; "
                 "please enable it and reload this page.")
    if needs_viewport and (w < p.min_viewport_width or h < p.min_viewport_height):
        return _("This study needs a browser window of at least %(w)s × %(h)s pixels; yours is %(vw)s × %(vh)s. "
                 "Please make the window larger (or turn your device sideways) and press Start again.",
                 w=p.min_viewport_width, h=p.min_viewport_height, vw=f"{w:.0f}", vh=f"{h:.0f}")
    if p.min_refresh_hz and hz < p.min_refresh_hz:
        return _("This study shows images for exact short times and needs a screen that refreshes at least "
                 "%(min)s times a second; yours measured %(hz)s. Closing other programs or tabs, or using "
                 "another computer, may help. Nothing has been recorded.", min=f"{p.min_refresh_hz:g}", hz=f"{hz:.0f}")
    return None
