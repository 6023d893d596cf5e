"""maskgit_kit: the shared plumbing of the MaskGIT inpainting lab kit.

What several folders of the kit share lives here, once: atomic writes (``atomic``), image files and their
validation (``images``), the kit's default locations (``paths``), the explicit loader of a lab-layout tree
(``labtree``), the offline FID weights (``fid_weights``), scoring (``scoring``) and the autograder's machinery
(``autograder``). The package never imports a module of ``lab/`` or ``solutions/`` by name: whatever needs a
lab-layout tree loads it by path through ``labtree``.
"""
__version__ = "0.3.0"
