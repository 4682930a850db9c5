"""Package list for setuptools (pyproject.toml holds everything else).

The repository keeps DESIGN.md's top-level folders (generation/, study_app/, analysis/, demo/, contracts/);
they install as advlegit.generation, ... so a researcher's own `analysis.py` cannot shadow them.
migrations/ and examples/ ship as package data (advlegit.migrations, advlegit.examples).
"""
from setuptools import find_packages, setup

CODE = ("generation", "study_app", "analysis", "demo", "contracts")
DATA = ("migrations", "examples")

packages = ["advlegit"] + [f"advlegit.{p}" for p in find_packages(include=[f"{top}*" for top in CODE])]
packages += [f"advlegit.{d}" for d in DATA]
package_dir = {"advlegit": "advlegit", **{f"advlegit.{top}": top for top in CODE + DATA}}

setup(packages=packages, package_dir=package_dir)
