"""Benchmarks: text vs latent (and codec vs alternatives) side by side in one run.

Each module has a ``main(argv)``; ``benchmarks/*.py`` and ``avp-suite bench`` call them.
"""
