"""ArXiv Daily – AI4MAT: harvest arXiv into a versioned SQLite dataset, published with Datasette."""

__version__ = "0.1.0"
