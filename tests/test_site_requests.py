"""What a user can type into the site's address bar and search boxes, over HTTP to a real `ai4mat serve`."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
from datasette.utils import tilde_encode

from .site_data import build_site_db, serving

DIFFUSION_PAPERS = ["2611.00001", "2611.00004", "cond-mat/0102536"]  # every paper whose text has diffus*
THROUGH_SHAPE = '{"table": "paper_categories", "column": "category", "value": "cs.LG"}'


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def get(url: str, *, follow: bool = True) -> tuple[int, dict, str]:
    opener = urllib.request.build_opener() if follow else OPENER
    try:
        with opener.open(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode("utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    path = tmp_path_factory.mktemp("requests") / "ai4mat.db"
    build_site_db(path)
    with serving(path) as (_, base, _):
        yield base.rstrip("/")


def canned_search(site: str, q: str) -> list[str]:
    status, _, body = get(site + "/ai4mat/search.json?_shape=array&" + urllib.parse.urlencode({"q": q}))
    assert status == 200, body
    return sorted(row["arxiv_id"] for row in json.loads(body))


@pytest.mark.parametrize(
    "typed, location",
    [
        ("diffus*", "/ai4mat/search?q=diffus%2A"),
        ('"', "/ai4mat/search?q=%22"),
        ("perovskite AND (", "/ai4mat/search?q=perovskite+AND+%28"),
    ],
)
def test_the_papers_search_box_lands_on_the_canned_search(site, typed, location):
    status, headers, _ = get(site + "/ai4mat/papers?" + urllib.parse.urlencode({"_search": typed}), follow=False)
    assert (status, headers["location"]) == (302, location)
    status, _, page = get(site + "/ai4mat/papers?" + urllib.parse.urlencode({"_search": typed}))
    assert status == 200
    assert "<h1" in page and "Search titles and abstracts" in page


def test_the_search_box_finds_prefixes_as_the_canned_search_does(site):
    # Issue 12: the table view quoted diffus* into a phrase and found 1 paper of 183.
    assert canned_search(site, "diffus*") == DIFFUSION_PAPERS
    status, _, body = get(site + "/ai4mat/papers.json?_shape=array&_col=title&_search=diffus%2A")
    assert status == 200
    assert sorted(row["arxiv_id"] for row in json.loads(body)) == DIFFUSION_PAPERS
    _, _, page = get(site + "/ai4mat/papers?_search=diffus%2A")
    for arxiv_id in DIFFUSION_PAPERS:  # the box opens the canned search: each paper's title links to its page
        assert f'<a href="/ai4mat/papers/{tilde_encode(arxiv_id)}">' in page


def test_a_lone_quote_in_a_search_box_is_an_empty_result_not_an_error(site):
    # Issue 12: papers?_search=%22 answered 400 "fts5: syntax error".
    assert canned_search(site, '"') == []
    assert get(site + "/ai4mat/papers.json?_shape=array&_search=%22")[::2] == (200, "[]")
    assert get(site + "/ai4mat/papers.json?_shape=array&_search_title=%22")[::2] == (200, "[]")
    status, _, page = get(site + "/ai4mat/papers?_search=%22")
    assert status == 200 and '<p class="zero-results">No papers.</p>' in page  # the canned search's list of papers


def test_an_empty_search_box_shows_every_paper(site):
    status, headers, _ = get(site + "/ai4mat/papers?_search=&primary_category=cs.LG", follow=False)
    assert (status, headers["location"]) == (302, "/ai4mat/papers?primary_category=cs.LG")
    status, _, page = get(site + "/ai4mat/papers?_search=+")
    assert status == 200 and "<title>ai4mat: papers: 4 rows sorted by updated descending</title>" in page


def test_the_home_page_search_box_submits_to_the_canned_search(site):
    status, _, page = get(site + "/")
    assert status == 200
    assert '<form action="/ai4mat/search" method="get">' in page
    assert '<input type="search" name="q"' in page
    status, _, page = get(site + "/ai4mat/search?q=diffus%2A")
    assert status == 200
    for arxiv_id in DIFFUSION_PAPERS:  # the box opens the canned search: each paper's title links to its page
        assert f'<a href="/ai4mat/papers/{tilde_encode(arxiv_id)}">' in page


def test_a_raw_fts5_search_stays_on_the_table_page(site):
    """?_searchmode=raw asks for FTS5 syntax, which the canned search would quote away: the
    papers page searches it itself instead of sending it there."""
    query = urllib.parse.urlencode({"_search": "diffus* OR perovskite", "_searchmode": "raw"})
    status, _, page = get(site + "/ai4mat/papers?" + query, follow=False)
    assert status == 200
    status, _, body = get(site + "/ai4mat/papers.json?_shape=array&" + query)
    rows = json.loads(body)
    assert rows and all(tilde_encode(row["arxiv_id"]) in page for row in rows)


BAD_REQUESTS = [
    ("_sort=nonexistent", "Cannot sort table by nonexistent"),
    ("_sort_desc=nonexistent", "Cannot sort table by nonexistent"),
    ("_sort=rowid", "Cannot sort table by rowid"),
    ("_sort=title&_sort_desc=title", "Cannot use _sort and _sort_desc at the same time"),
    ("_through=x", f"_through=x: not JSON; expected {THROUGH_SHAPE}"),
    ("_through=%7B%7D", f"_through={{}}: expected {THROUGH_SHAPE}"),
    ("_through=%5B1%5D", f"_through=[1]: expected {THROUGH_SHAPE}"),
    ('_through={"table":"paper_categories"}', f'_through={{"table":"paper_categories"}}: expected {THROUGH_SHAPE}'),
    ('_through={"table":1,"column":2,"value":{}}', f'_through={{"table":1,"column":2,"value":{{}}}}: expected {THROUGH_SHAPE}'),
    ('_through={"table":"runs","column":"id","value":1}', "Invalid _through - could not find corresponding foreign key"),
    ('_through={"table":"nope","column":"x","value":1}', "Invalid _through - could not find corresponding foreign key"),
    ("_timelimit=abc", "_timelimit=abc: expected a whole number of milliseconds"),
    ("title__in=%5B", "title__in=[: expected a JSON list or comma-separated values"),
]


@pytest.mark.parametrize("query, message", BAD_REQUESTS)
def test_a_malformed_table_argument_is_a_bad_request_with_one_line(site, query, message):
    status, _, body = get(site + "/ai4mat/papers.json?" + query)
    assert (status, json.loads(body)["error"]) == (400, message)
    status, _, page = get(site + "/ai4mat/papers?" + query)
    assert status == 400
    assert f"<pre>{message}</pre>".replace('"', "&#34;") in page or message.replace('"', "&#34;") in page


HOSTILE = [
    *[query for query, _ in BAD_REQUESTS],
    "_search=%22", "_search=AND%20(", "_search=*", "_search=NEAR(a%20b)", "_search=%00", "_search_title=%22",
    "_search_nope=x", "_searchmode=raw&_search=%22", "_searchmode=nope&_search=x", "_where=nope", "_where=1)%20union%20select",
    "_size=abc", "_size=-1", "_size=99999", "_size=max", "_next=zzz", "_next=%00", "_next=1%2C2%2C3",
    "_facet=nope", "_facet=%22", "_facet_array=nope", "_facet_date=nope", "_facet_child=nope", "_facet_child=runs.id",
    "_facet_size=abc", "_facet_size=max", "_col=nope", "_nocol=nope", "nope=1", "title__nope=1", "version__gt=abc",
    "updated__date=xyz", "version__arraycontains=x", "_labels=maybe", "_label=nope", "_shape=nope", "_json=nope",
    "_sort_desc=updated&_next=abc", "_ttl=abc", "_fts_table=nope&_search=x", "_fts_pk=nope&_search=x",
    "title__in=%5B1%2C", "_through=%7B%22table%22%3A%22paper_categories%22%2C%22column%22%3A%22nope%22%2C%22value%22%3A1%7D",
    "_facet=summary&_facet_size=max", "_nofacet=1", "_nocount=1", "_trace=1", "_stream=on",
]


def test_no_table_argument_a_user_can_type_answers_5xx(site):
    failures = []
    for table in ("papers", "versions", "runs", "paper_categories", "paper_authors", "category_counts", "month_counts"):
        for suffix in ("", ".json", ".csv"):
            for query in HOSTILE:
                status, _, body = get(f"{site}/ai4mat/{table}{suffix}?{query}")
                if status >= 500:
                    failures.append((status, f"/ai4mat/{table}{suffix}?{query}", body[:120]))
    assert failures == []
