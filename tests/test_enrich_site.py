"""The published enrichment: by_tag, by_elements, with_code, facets, and a paper's row page."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from datasette.app import Datasette

from harvest.store import finish_run, save_papers, start_run, writing

from .fake_arxiv import make_paper
from .site_data import PLUGINS_DIR, ROOT, load_metadata

PAPERS = [
    make_paper(
        1, title="Diffusion models for MOF design", updated="2026-11-20T01:00:00Z",
        summary="A diffusion model generates metal-organic frameworks. Code: https://github.com/lab/mofdiff.",
    ),
    make_paper(
        2, title="LiFePO4 cathodes found by a diffusion model", updated="2026-11-20T02:00:00Z",
        summary="We map the Li-Fe-P-O phase diagram for batteries.", comment="Data: https://zenodo.org/records/7",
    ),
    make_paper(
        3, title="Screening MOFs with graph neural networks", updated="2026-11-20T03:00:00Z",
        summary="Message passing over metal-organic frameworks; LiFePO4 is not one.",
    ),
    make_paper(
        4, title='A <script>alert("x")</script> diffusion model', updated="2026-11-20T04:00:00Z",
        summary='Code at \\href{https://github.com/x/y?a=1&b="2"}{here}.',
    ),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    path = tmp_path_factory.mktemp("enrich_site") / "ai4mat.db"
    with writing(path) as db:
        run_id = start_run(db, "q")
        with db.atomic():
            finish_run(db, run_id, save_papers(db, run_id, PAPERS))
    return Datasette(
        [], immutables=[str(path)], metadata=load_metadata(), plugins_dir=str(PLUGINS_DIR),
        template_dir=str(ROOT / "templates"),
    )


async def rows(ds, path):
    response = await ds.client.get(path + "&_shape=array")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.asyncio
async def test_by_tag_needs_every_tag(site):
    found = await rows(site, "/ai4mat/by_tag.json?tags=" + urllib.parse.quote("diffusion model, MOF"))
    assert [(r["arxiv_id"], r["tags"]) for r in found] == [("2611.00001", "MOF, diffusion model")]
    found = await rows(site, "/ai4mat/by_tag.json?tags=MOF")
    assert [r["arxiv_id"] for r in found] == ["2611.00003", "2611.00001"]
    assert await rows(site, "/ai4mat/by_tag.json?tags=" + urllib.parse.quote("MOF,no such tag")) == []


@pytest.mark.asyncio
async def test_by_elements_needs_every_element_in_any_separator(site):
    for spelling in ("Li,Fe,P,O", "Li-Fe-P-O", "Li Fe P O"):
        found = await rows(site, "/ai4mat/by_elements.json?elements=" + urllib.parse.quote(spelling))
        assert [(r["arxiv_id"], r["elements"], r["formulas"]) for r in found] == [
            ("2611.00003", "Fe Li O P", "LiFePO4"), ("2611.00002", "Fe Li O P", "LiFePO4"),
        ], spelling
    assert await rows(site, "/ai4mat/by_elements.json?elements=Li,Zr") == []


@pytest.mark.asyncio
async def test_with_code_lists_the_newest_papers_with_a_code_link(site):
    found = await rows(site, "/ai4mat/with_code.json?tag=")
    assert [(r["arxiv_id"], r["code"], r["data"]) for r in found] == [
        ("2611.00004", "https://github.com/x/y?a=1&b=", None),  # a quote ends the address
        ("2611.00001", "https://github.com/lab/mofdiff", None),
    ]
    found = await rows(site, "/ai4mat/with_code.json?tag=MOF")
    assert [r["arxiv_id"] for r in found] == ["2611.00001"]


@pytest.mark.asyncio
async def test_papers_facet_on_tags_elements_and_link_kinds(site):
    response = await site.client.get("/ai4mat/papers.json?_facet_child=paper_tags.tag")
    facets = response.json()["facet_results"]
    counts = {spec: {v["value"]: v["count"] for v in facet["results"]} for spec, facet in facets.items()}
    assert counts["paper_links.kind"] == {"code": 2, "data": 1}
    assert counts["paper_elements.element"] == {"Fe": 2, "Li": 2, "O": 2, "P": 2}
    assert counts["paper_tags.tag"]["diffusion model"] == 3
    through = json.dumps({"table": "paper_tags", "column": "tag", "value": "MOF"})
    found = await rows(site, "/ai4mat/papers.json?_col=arxiv_id&_through=" + urllib.parse.quote(through))
    assert sorted(r["arxiv_id"] for r in found) == ["2611.00001", "2611.00003"]


@pytest.mark.asyncio
async def test_a_papers_row_page_shows_its_tags_elements_formulas_and_links(site):
    html = (await site.client.get("/ai4mat/papers/2611~2E00002")).text
    section = html[html.index('<section class="paper-enrichment">'):html.index("</section>", html.index("paper-enrichment"))]
    assert ">battery material</a>" in section and ">diffusion model</a>" in section
    assert '<span class="element">Fe</span> <span class="element">Li</span>' in section
    assert '<code class="formula">LiFePO4</code>' in section
    assert '<span class="link-kind">data</span>: <a href="https://zenodo.org/records/7" rel="nofollow">https://zenodo.org/records/7</a>' in section
    hostile = (await site.client.get("/ai4mat/papers/2611~2E00004")).text
    assert "<script>alert" not in hostile
    assert 'href="https://github.com/x/y?a=1&amp;b="' in hostile


@pytest.mark.asyncio
async def test_new_today_and_the_feed_show_tags(site):
    found = await rows(site, "/ai4mat/new_today.json?_col=tags")
    assert [(r["arxiv_id"], r["tags"]) for r in found][:2] == [
        ("2611.00004", "diffusion model"), ("2611.00003", "MOF, graph neural network, high-throughput screening"),
    ]
