"""Where the site's files are: metadata.yml, plugins/, templates/ and the default config.json.

They live at the repository's top level and are shipped inside the package as `harvest/site/`
(pyproject.toml maps the top level to that package without moving anything). From a checkout
(an editable install) the repository's own files are used, so an edit shows at the next serve;
from an installed wheel, the copy inside the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

METADATA = "metadata.yml"
PLUGINS = "plugins"
TEMPLATES = "templates"
CONFIG = "config.json"


@dataclass(frozen=True)
class SiteFiles:
    """One folder holding the site: metadata.yml, plugins/ and templates/ (and the default config)."""

    folder: Path

    @property
    def metadata(self) -> Path:
        return self.folder / METADATA

    @property
    def plugins(self) -> Path:
        return self.folder / PLUGINS

    @property
    def templates(self) -> Path:
        return self.folder / TEMPLATES

    @property
    def config(self) -> Path:
        return self.folder / CONFIG


def checkout_folder() -> Path | None:
    """The repository ai4mat runs from, if it runs from one (the package sits beside pyproject.toml)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / METADATA).is_file():
        return root
    return None


def site_files() -> SiteFiles:
    """The site ai4mat serves and publishes: the checkout's when there is one, else the packaged copy."""
    root = checkout_folder()
    if root is not None:
        return SiteFiles(root)
    # A wheel installs into a folder, so the traversable is a real path Datasette can be given.
    return SiteFiles(Path(str(resources.files("harvest").joinpath("site"))))


def default_config() -> bytes:
    """The bytes `ai4mat init` writes: the repository's config.json, as shipped."""
    return site_files().config.read_bytes()


if __name__ == "__main__":
    # scripts/publish.sh and scripts/daily.sh ask here which files to publish and smoke-check.
    print(site_files().folder)
