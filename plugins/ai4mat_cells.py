"""Datasette plugin: no per-cell work for cells nobody renders differently.

datasette-render-markdown (installed as a dependency of datasette-dashboards, whose Trends page
uses its `render_markdown` template function) also renders table cells of columns named
`*_markdown` or listed in its plugin configuration. This schema has no such column and
metadata.yml configures none, yet its `render_cell` hook read the plugin configuration (a deep
copy of the metadata) for every cell: ~48 ms of a 100-row papers page at a million papers. Its
cell hook is removed at startup; its template function and Jinja extension stay.

Loaded with `datasette --plugins-dir plugins`: imports only Datasette and the standard library.
"""

from __future__ import annotations

import fnmatch

from datasette import hookimpl
from datasette.plugins import pm

MARKDOWN_PLUGIN = "render_markdown"  # its entry point's name


def renders_markdown_cells(datasette) -> bool:
    """Whether any configuration asks datasette-render-markdown to render cells."""
    for database in datasette.databases:
        if datasette.plugin_config("datasette-render-markdown", database=database):
            return True
        for table in (datasette.metadata("tables", database=database) or {}):
            if datasette.plugin_config("datasette-render-markdown", database=database, table=table):
                return True
    return False


def markdown_named_columns(conn) -> list[str]:
    """Columns of this file that the plugin would render by name (`*_markdown`)."""
    columns = []
    for (table,) in conn.execute("select name from sqlite_master where type in ('table', 'view')").fetchall():
        for row in conn.execute(f"pragma table_info([{table}])").fetchall():
            if fnmatch.fnmatch(row[1], "*_markdown"):
                columns.append(f"{table}.{row[1]}")
    return columns


@hookimpl
def startup(datasette):
    async def drop_markdown_cell_hook():
        plugin = pm.get_plugin(MARKDOWN_PLUGIN)
        if plugin is None or renders_markdown_cells(datasette):
            return
        for db in datasette.databases.values():
            if db.is_memory:
                continue
            if await db.execute_fn(markdown_named_columns):
                return
        if plugin in [impl.plugin for impl in pm.hook.render_cell.get_hookimpls()]:
            pm.hook.render_cell._remove_plugin(plugin)

    return drop_markdown_cell_hook
