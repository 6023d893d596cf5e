"""Scoring of inpainted test images: one implementation shared by every command that reports a number.

A student's own score (``score``), the baseline table (``baselines``) and the class leaderboard (``leaderboard``)
use the same validation, metrics and cached ground-truth FID statistics, so they can never disagree.

Library: ``validation`` (the submission format), ``metrics`` (PSNR and SSIM, whole image and hole only), ``fid``
(Inception features, cached ground-truth statistics and features, Fréchet distance), ``uncertainty`` (the FID interval,
KID, precision/recall), ``points`` (the course's FID -> points
table), ``scorer`` (everything together), ``table`` (plain-text and Markdown tables), ``options`` (the command-line
options the commands share). Commands: ``python -m maskgit_kit.scoring.score`` (``maskgit-score``),
``... .baselines`` (``maskgit-baselines``), ``... .leaderboard`` (``maskgit-leaderboard``), ``... .compare``
(``maskgit-compare``: is folder A better than B).
"""
