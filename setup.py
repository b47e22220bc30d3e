"""The package layout that setup.cfg cannot state: renamed folders.

The repository keeps recsdk's own plugins in ``plugins/`` and the alembic scripts in
``migrations/``, but installed they must live under names that are ours: a top-level
``plugins`` package would clash with other distributions, and migrations outside the
package are missing from a wheel. So ``plugins/`` installs as ``recsdk_plugins`` and
``migrations/`` as ``recsdk.migrations``. ``packages = find:`` names packages after their
folders, so the renamed ones are listed here; everything else stays in setup.cfg.
"""

from setuptools import find_namespace_packages, find_packages, setup

RENAMED = {"recsdk_plugins": "plugins", "recsdk.migrations": "migrations"}


def renamed_packages() -> list[str]:
    """Each renamed folder and its sub-folders, under the installed name."""
    names = []
    for package, folder in RENAMED.items():
        names.append(package)
        names += [f"{package}.{sub}" for sub in find_namespace_packages(folder)
                  if "__pycache__" not in sub]
    return names


setup(
    packages=find_packages(include=["recsdk", "recsdk.*"]) + renamed_packages(),
    package_dir=RENAMED,
)
