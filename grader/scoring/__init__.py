"""Shared scoring code for ``grader/score.py``, ``grader/baselines.py`` and ``grader/leaderboard.py``.

One implementation of validation, metrics and the ground-truth FID statistics cache, so that a student's
own score, the baseline table and the class leaderboard can never disagree about a number.

Modules: ``paths`` (repo locations and defaults), ``validation`` (the submission format), ``metrics`` (PSNR and
SSIM, whole image and hole only), ``fid`` (Inception features, cached ground-truth statistics, Fréchet distance),
``points`` (the course's FID -> points table), ``scorer`` (everything together), ``table`` (plain-text tables).
"""
