"""How trials are shown, for every task type: the design file's `[presentation]` section.

The browser's trial runner (static/js/task.js with js/present.js, js/noise.js, js/display.js) applies it
and reports what it measured with each answer; responses.py checks those values against it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

MASKS = ("none", "blank", "noise")
MAX_MS = 60_000  # no phase of a trial lasts longer than a minute
TIMEOUT_RESPONSE = "timeout"  # what the runner sends when the response window passes without an answer
CONFIDENCE_LEVELS = (1, 2, 3, 4)


class PresentationError(ValueError):
    """A [presentation] problem; the message names the field."""


@dataclass
class Presentation:
    fixation_ms: int = 0  # a fixation cross this long before each image; 0 = none
    exposure_ms: int = 0  # how long the image stays up; 0 = until answered
    mask: str = "none"  # none | blank | noise: what replaces the image after a timed exposure
    mask_ms: int = 0  # how long the mask stays up (needs exposure_ms > 0 and a mask)
    # answers later than this (counted from image onset, like rt_ms) are timed out; 0 = no limit
    response_window_ms: int = 0
    min_refresh_hz: float = 0.0  # displays measured slower than this are not started; 0 = any
    confidence: bool = False  # ask "how sure are you?" (1-4) after each answer
    fullscreen: bool = False  # trials run in full screen; exits are counted per trial
    min_viewport_width: int = 0  # CSS pixels; narrower windows are not started; 0 = any
    min_viewport_height: int = 0  # CSS pixels; lower windows are not started; 0 = any

    @property
    def timed(self) -> bool:
        return self.exposure_ms > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Presentation":
        """A stored design's section; studies created before [presentation] existed get the defaults
        (until answered, no mask, no window), which is how they were shown."""
        return cls(**(d or {}))


KEYS = tuple(f.name for f in fields(Presentation))


def _number(tbl: dict, key: str, typ: type | tuple, lo: float, hi: float) -> Any:
    default = getattr(Presentation, key)
    if key not in tbl:
        return default
    v = tbl[key]
    if isinstance(v, bool) or not isinstance(v, typ) or not lo <= v <= hi:
        kind = "an integer" if typ is int else "a number"
        raise PresentationError(f"presentation.{key}: expected {kind} from {lo:g} to {hi:g}, got {v!r}")
    return v


def _flag(tbl: dict, key: str) -> bool:
    v = tbl.get(key, getattr(Presentation, key))
    if not isinstance(v, bool):
        raise PresentationError(f"presentation.{key}: expected true or false, got {v!r}")
    return v


def parse_section(tbl: dict[str, Any]) -> Presentation:
    unknown = sorted(set(tbl) - set(KEYS))
    if unknown:
        raise PresentationError(f"presentation.{unknown[0]}: unknown field (allowed: {', '.join(KEYS)})")
    mask = tbl.get("mask", "none")
    if mask not in MASKS:
        raise PresentationError(f"presentation.mask: expected one of {', '.join(MASKS)}, got {mask!r}")
    p = Presentation(
        fixation_ms=_number(tbl, "fixation_ms", int, 0, MAX_MS),
        exposure_ms=_number(tbl, "exposure_ms", int, 0, MAX_MS),
        mask=mask,
        mask_ms=_number(tbl, "mask_ms", int, 0, MAX_MS),
        response_window_ms=_number(tbl, "response_window_ms", int, 0, 10 * MAX_MS),
        min_refresh_hz=float(_number(tbl, "min_refresh_hz", (int, float), 0, 1000)),
        confidence=_flag(tbl, "confidence"),
        fullscreen=_flag(tbl, "fullscreen"),
        min_viewport_width=_number(tbl, "min_viewport_width", int, 0, 10_000),
        min_viewport_height=_number(tbl, "min_viewport_height", int, 0, 10_000),
    )
    if p.mask != "none" and not p.timed:
        raise PresentationError("presentation.mask: a mask follows a timed exposure; set exposure_ms > 0 "
                                "or mask = \"none\"")
    if p.mask != "none" and p.mask_ms == 0:
        raise PresentationError(f"presentation.mask_ms: the {p.mask} mask needs a duration > 0")
    if p.mask == "none" and p.mask_ms:
        raise PresentationError("presentation.mask_ms: set only with mask = \"blank\" or \"noise\"")
    shown = p.exposure_ms + p.mask_ms
    if p.response_window_ms and p.timed and p.response_window_ms < shown:
        raise PresentationError(f"presentation.response_window_ms: counted from image onset, so it must be at "
                                f"least exposure_ms + mask_ms ({shown})")
    return p


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
