"""The autograder: ``pytest grader/`` grades ``lab/`` (``--impl FOLDER`` another lab-layout tree).

The plugin (options, the isolated import of the graded folder, points, feedback, results) is
``maskgit_kit.autograder.plugin``; importing its names here makes pytest use it for this folder only.
"""
from maskgit_kit.autograder import plugin
from maskgit_kit.autograder.plugin import *  # noqa: F401,F403

plugin.checks_folder(__file__)
