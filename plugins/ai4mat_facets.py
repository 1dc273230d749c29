"""Datasette plugin: facets over a child table, e.g. a paper's categories in paper_categories.

A JSON-array column facet (`{array: categories}`) unpacks every filtered row's array and took
1.2 s of SQL at a million papers, over Datasette's facet time limit. The same counts come from
a child table with one row per (paper, value), read through its index. Configure it in
metadata.yml as

    facets:
      - child: paper_categories.category

or ask for it with `?_facet_child=paper_categories.category`. The child table must have a
foreign key to the faceted table (paper_categories.arxiv_id -> papers.arxiv_id). Each value
links to the papers having it with Datasette's own `_through` filter.

Loaded with `datasette --plugins-dir plugins`: imports only Datasette and the standard library.
"""

from __future__ import annotations

import json
import re
import urllib.parse

from datasette import hookimpl
from datasette.database import QueryInterrupted
from datasette.facets import Facet
from datasette.utils import escape_sqlite, path_with_added_args, path_with_removed_args
from datasette.utils.asgi import BadRequest


def through_value(child_table: str, column: str, value) -> str:
    """The `_through` argument that keeps the rows whose child table has `column = value`."""
    return json.dumps({"table": child_table, "column": column, "value": value}, ensure_ascii=False, separators=(",", ":"))


def _parse_through(argument: str):
    try:
        through = json.loads(argument)
    except ValueError:
        return None
    if not isinstance(through, dict):
        return None
    return (through.get("table"), through.get("column"), through.get("value"))


class ChildFacet(Facet):
    """Counts of a child table's column over the rows the table view currently shows."""

    type = "child"

    async def suggest(self):
        return []

    async def _child_spec(self, spec: str) -> tuple[str, str, dict]:
        """(child table, column, foreign key to our table) for "table.column"; BadRequest if not one."""
        child_table, _, column = spec.partition(".")
        db = self.ds.get_database(self.database)
        problem = None
        if not self.table:
            problem = "child facets work on tables, not queries"
        elif not child_table or not column or not await db.table_exists(child_table):
            problem = "expected child_table.column"
        elif column not in await db.table_columns(child_table):
            problem = f"{child_table} has no column {column}"
        else:
            keys = [fk for fk in await db.foreign_keys_for_table(child_table) if fk["other_table"] == self.table]
            if keys:
                return child_table, column, keys[0]
            problem = f"{child_table} has no foreign key to {self.table}"
        raise BadRequest(f"_facet_child={spec}: {problem}")

    def _is_unfiltered(self) -> bool:
        # The table view's facet SQL is "select <columns> from <table> <where>"; without a where
        # clause the child table can be counted whole, through its own index.
        unfiltered = re.compile(r"select .* from " + re.escape(escape_sqlite(self.table)) + r"\s*", re.S)
        return not self.params and unfiltered.fullmatch(self.sql) is not None

    async def facet_results(self):
        facet_results, facets_timed_out = [], []
        qs_pairs = self.get_querystring_pairs()
        selected_throughs = {_parse_through(value) for key, value in qs_pairs if key == "_through"}
        facet_size = self.get_facet_size()
        for source_and_config in self.get_configs():
            config = source_and_config["config"]
            spec = config.get("simple") or f"{config.get('table')}.{config.get('column')}"
            child_table, column, fk = await self._child_spec(spec)
            child_key = escape_sqlite(fk["column"])
            if self._is_unfiltered():
                rows_sql = f"select {escape_sqlite(column)} as value, {child_key} as parent from {escape_sqlite(child_table)}"
            else:
                rows_sql = (
                    f"select {escape_sqlite(column)} as value, {child_key} as parent from {escape_sqlite(child_table)} "
                    f"where {child_key} in (select {escape_sqlite(fk['other_column'])} from ({self.sql}))"
                )
            # A value listed twice for one parent row counts once: the count is of rows shown.
            facet_sql = (
                f"select value, count(distinct parent) as count from ({rows_sql}) where value is not null "
                f"group by value order by count desc, value limit {facet_size + 1}"
            )
            try:
                facet_rows = await self.ds.execute(
                    self.database, facet_sql, self.params, truncate=False,
                    custom_time_limit=self.ds.setting("facet_time_limit_ms"),
                )
            except QueryInterrupted:
                facets_timed_out.append(spec)
                continue
            values = []
            for row in facet_rows.rows[:facet_size]:
                argument = through_value(child_table, column, row["value"])
                selected = (child_table, column, row["value"]) in selected_throughs
                if selected:
                    kept = [(key, value) for key, value in qs_pairs
                            if not (key == "_through" and _parse_through(value) == (child_table, column, row["value"]))]
                    toggle_path = self.request.path + ("?" + urllib.parse.urlencode(kept) if kept else "")
                else:
                    toggle_path = path_with_added_args(self.request, {"_through": argument})
                values.append({
                    "value": row["value"],
                    "label": row["value"],
                    "count": row["count"],
                    "toggle_url": self.ds.absolute_url(self.request, self.ds.urls.path(toggle_path)),
                    "selected": selected,
                })
            facet_results.append({
                "name": spec,
                "type": self.type,
                "hideable": source_and_config["source"] != "metadata",
                "toggle_url": self.ds.urls.path(path_with_removed_args(self.request, {"_facet_child": spec})),
                "results": values,
                "truncated": len(facet_rows.rows) > facet_size,
            })
        return facet_results, facets_timed_out


@hookimpl
def register_facet_classes():
    return [ChildFacet]
