"""The course's FID -> points table (NYCU DLP MaskGIT lab): FID <= 40 gets full marks, then 3 points fewer
per 5 FID, nothing above 65. A band's upper bound belongs to it (FID 40.0 -> 20, 40.01 -> 17).

How far apart the bands are, compared with FID's own noise: two disjoint sets of 747 real Fashion-MNIST test
images are about 30 FID apart (``uncertainty.REAL_VS_REAL_FID``, measured), so with 747 images no method scores
near 0 and the full-marks band starts only 10 FID above that floor; a score's interval (``fid_ci``) says how much
it moves with the choice of images.
"""
from __future__ import annotations

import math

from .uncertainty import REAL_VS_REAL_FID, REAL_VS_REAL_N

MAX_POINTS = 20
# (upper bound of the band, inclusive; points)
FID_POINTS: tuple[tuple[float, int], ...] = ((40, 20), (45, 17), (50, 14), (55, 11), (60, 8), (65, 5))


def fid_points(fid: float | None) -> int:
    """Points for one FID; a missing or non-finite FID gets 0."""
    if fid is None or not math.isfinite(fid):
        return 0
    for upper, points in FID_POINTS:
        if fid <= upper:
            return points
    return 0


def band(fid: float | None) -> str:
    """The table row a FID falls in, e.g. ``40 < FID <= 45`` (for the printed report)."""
    if fid is None or not math.isfinite(fid):
        return "no FID"
    lower = None
    for upper, _ in FID_POINTS:
        if fid <= upper:
            return f"FID <= {upper}" if lower is None else f"{lower} < FID <= {upper}"
        lower = upper
    return f"FID > {lower}"


FLOOR_NOTE = (f"for scale: two disjoint sets of {REAL_VS_REAL_N} real Fashion-MNIST test images score "
              f"FID {REAL_VS_REAL_FID:g} against each other")
