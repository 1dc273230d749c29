"""Talk to the arXiv API politely: one session, a delay between requests, retries, paging."""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import requests

from . import __version__
from .parse import ArxivAPIError, Feed, ParseError, parse_feed

log = logging.getLogger(__name__)

# arXiv asks for a descriptive User-Agent; the commands add the configured repository's URL
# (harvest.site_config.user_agent) rather than name one that may not exist.
USER_AGENT = f"ai4mat/{__version__}"
PAGE_SIZE = 2000  # arXiv's maximum per request
QUERY_LIMIT = 30_000  # arXiv refuses start + max_results beyond this for one query
RETRY_STATUSES = {406, 429} | set(range(500, 600))
MAX_RETRY_AFTER = 300.0  # seconds; a longer Retry-After fails the run rather than hang the job
# A full 2000-entry page is about 5 MB. Far more is not arXiv (a gzip bomb decompresses to GBs).
MAX_RESPONSE_BYTES = 64 * 2**20


# Module-level so tests can replace the wait without touching time.sleep for everyone.
_sleep = time.sleep


class ResponseTooSlow(requests.Timeout):
    """The body kept trickling in past the whole-response deadline."""


class ResponseTooLarge(requests.RequestException):
    """The body, decompressed, passed the size limit."""


class FetchError(Exception):
    """A request kept failing after every retry, or can never succeed; the message names the cause."""


# Where the endpoint comes from, for messages about it.
CHANGE_ENDPOINT = "change the endpoint with --api-url, $ARXIV_API_URL or api_url in config.json"


@dataclass
class SearchResult:
    papers: list[dict] = field(default_factory=list)
    total_results: int = 0
    requests: int = 0
    skipped: list[str] = field(default_factory=list)


class ArxivClient:
    """Owns the HTTP session, the delay between requests, retries and paging.

    Every request, retries included, starts at least `delay_seconds` after the previous one
    ended (arXiv's terms: one request every 3 seconds). `sleep` and `clock` are injectable so
    tests run fast against a local server while still checking the waits asked for.
    """

    def __init__(
        self,
        api_url: str,
        *,
        delay_seconds: float = 3.0,
        max_retries: int = 5,
        backoff_seconds: float | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        response_seconds: float | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        user_agent: str = USER_AGENT,
    ):
        self.api_url = api_url
        self.delay_seconds = delay_seconds
        self.max_retries = max_retries
        # Backoff starts from the polite delay and doubles: 3, 6, 12, 24, 48 s by default.
        self.backoff_seconds = delay_seconds if backoff_seconds is None else backoff_seconds
        self.timeout = timeout
        # The read timeout bounds each wait for bytes, not the whole body: a server trickling a
        # byte now and then would hold a run for hours. Default: ten read timeouts (10 min).
        self.response_seconds = 10 * timeout[1] if response_seconds is None else response_seconds
        self.max_response_bytes = max_response_bytes
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": user_agent, "Accept": "application/atom+xml"})
        self.sleep = sleep or (lambda seconds: _sleep(seconds))
        self.clock = clock
        self.requests = 0
        self._last_request_end: float | None = None

    def _wait_turn(self, at_least: float = 0.0) -> None:
        wait = at_least
        if self._last_request_end is not None:
            wait = max(wait, self.delay_seconds - (self.clock() - self._last_request_end))
        if wait > 0:
            self.sleep(wait)

    def _get(self, params: dict) -> tuple[requests.Response, bytes]:
        """The response and its whole body, within the deadline and the size limit."""
        self.requests += 1
        try:
            response = self.session.get(self.api_url, params=params, timeout=self.timeout, stream=True)
            too_slow = threading.Event()

            def cut_off() -> None:
                too_slow.set()
                try:
                    response.raw.shutdown()  # wakes the read blocked in the other thread
                except (ValueError, RuntimeError, OSError):
                    pass  # the body was complete after all

            watchdog = threading.Timer(self.response_seconds, cut_off)
            watchdog.daemon = True
            watchdog.start()
            body = bytearray()
            try:
                for chunk in response.iter_content(2**16):
                    body += chunk
                    if len(body) > self.max_response_bytes:
                        response.close()
                        raise ResponseTooLarge()
            except requests.RequestException:
                if too_slow.is_set():
                    raise ResponseTooSlow() from None
                raise
            finally:
                watchdog.cancel()
            return response, bytes(body)
        finally:
            self._last_request_end = self.clock()

    def fetch_page(self, params: dict) -> Feed:
        """GET one page and parse it, retrying transient faults with backoff.

        Transient: connection errors, timeouts, HTTP 406/429/5xx (Retry-After honoured), a body
        that is not a complete Atom feed, and a page with no entries although totalResults says
        there should be some. Raises ArxivAPIError at once for arXiv's error feed, FetchError when
        retries run out.
        """
        extra_wait = 0.0
        for attempt in range(self.max_retries + 1):
            self._wait_turn(extra_wait)
            began = self.clock()
            cause, retry_after = self._try_once(params)
            if isinstance(cause, Feed):
                log.info(
                    "arXiv API start=%s: %d entries of %d in %.1f s",
                    params.get("start", 0), len(cause.papers) + len(cause.skipped), cause.total_results, self.clock() - began,
                )
                return cause
            if attempt == self.max_retries:
                break
            backoff = self.backoff_seconds * 2**attempt
            if retry_after is not None:
                if retry_after > MAX_RETRY_AFTER:
                    raise FetchError(f"{cause}; arXiv asked to wait {retry_after:.0f} s, longer than {MAX_RETRY_AFTER:.0f} s")
                backoff = max(backoff, retry_after)
            log.warning("%s; retry %d of %d in %.1f s", cause, attempt + 1, self.max_retries, backoff)
            extra_wait = backoff
        message = f"{cause} (gave up after {self.max_retries + 1} attempts)"
        if cause.startswith("cannot reach"):
            message += f"; check the network, or {CHANGE_ENDPOINT}"
        raise FetchError(message)

    def _try_once(self, params: dict) -> tuple[Feed | str, float | None]:
        """One attempt: the parsed Feed, or a sentence saying why it should be retried."""
        where = f"start={params.get('start', 0)}"
        try:
            response, body = self._get(params)
        except ResponseTooLarge:
            return f"arXiv API sent more than {self.max_response_bytes // 2**20} MB for one page ({where})", None
        except ResponseTooSlow:
            return f"arXiv API sent its answer too slowly ({where}): over {self.response_seconds:g} s", None
        except requests.Timeout:
            return f"arXiv API timed out ({where})", None
        except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL) as error:
            # No retry can mend a malformed URL or a scheme requests cannot speak.
            raise FetchError(f"{self.api_url!r} is not a usable arXiv API URL ({_first_line(error)}); {CHANGE_ENDPOINT}") from None
        except requests.ConnectionError as error:
            return f"cannot reach the arXiv API at {self.api_url} ({where}): {_connection_reason(error)}", None
        except requests.exceptions.ChunkedEncodingError:
            # urllib3's own text repeats itself ("IncompleteRead(...)" twice) on one line.
            return f"arXiv API closed the connection mid-response ({where})", None
        except requests.RequestException as error:
            return f"request to the arXiv API failed ({where}): {error}", None
        if response.status_code in RETRY_STATUSES:
            return f"arXiv API answered HTTP {response.status_code} ({where})", _retry_after(response)
        try:
            feed = parse_feed(body)
        except ArxivAPIError as error:
            raise ArxivAPIError(f"arXiv API error (HTTP {response.status_code}): {error}") from None
        except ParseError as error:
            if response.status_code != 200:
                raise FetchError(f"arXiv API answered HTTP {response.status_code} ({where}) without a feed") from None
            return f"unreadable arXiv response ({where}): {error}", None
        if response.status_code != 200:
            raise FetchError(f"arXiv API answered HTTP {response.status_code} ({where})")
        start = int(params.get("start", 0))
        if not feed.papers and not feed.skipped and feed.total_results > start:
            return f"arXiv returned an empty page at {where} although totalResults is {feed.total_results}", None
        return feed, None

    def search(
        self,
        query: str,
        *,
        max_results: int | None = None,
        page_size: int = PAGE_SIZE,
        sort_by: str = "lastUpdatedDate",
        sort_order: str = "descending",
    ) -> SearchResult:
        """Every result of `query` (up to arXiv's 30,000 or `max_results`), in the order served."""
        result = SearchResult()
        for feed in self.iter_pages(query, max_results=max_results, page_size=page_size, sort_by=sort_by, sort_order=sort_order):
            result.papers.extend(feed.papers)
            result.skipped.extend(feed.skipped)
            result.total_results = feed.total_results
        result.requests = self.requests
        return result

    def iter_pages(
        self,
        query: str,
        *,
        max_results: int | None = None,
        page_size: int = PAGE_SIZE,
        sort_by: str = "lastUpdatedDate",
        sort_order: str = "descending",
    ) -> Iterator[Feed]:
        """Yield each page of `query`, stopping at the last result, `max_results` or 30,000."""
        cap = min(max_results or QUERY_LIMIT, QUERY_LIMIT)
        limit = cap
        start = 0
        while start < limit:
            size = min(page_size, limit - start)
            params = {
                "search_query": query,
                "start": start,
                "max_results": size,
                "sortBy": sort_by,
                "sortOrder": sort_order,
            }
            feed = self.fetch_page(params)
            yield feed
            served = len(feed.papers) + len(feed.skipped)
            start += served
            # The latest page's totalResults is the truth: results come and go between pages.
            limit = min(cap, feed.total_results)
            if served == 0:
                break


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _connection_reason(error: requests.ConnectionError) -> str:
    """A few words for why a connection failed, from the chain urllib3 wraps it in."""
    text = str(error)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host not found"),
        ("NameResolutionError", "host not found"),
        ("Temporary failure in name resolution", "host not found"),
        ("Network is unreachable", "network unreachable"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "connection closed by the server"),
    ):
        if needle in text:
            return reason
    return type(error).__name__


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RecordedPages:
    """Recorded API responses replayed through the same parse and store path as live ones.

    Stands in for ArxivClient in `run_harvest`: `search` returns every paper of the files in
    order. An unreadable file raises FetchError; a recorded arXiv error raises ArxivAPIError.
    """

    def __init__(self, paths: list[str]):
        self.paths = paths
        self.requests = 0  # nothing goes over the network

    def search(self, query: str, **_options) -> SearchResult:
        result = SearchResult()
        for path in self.paths:
            try:
                with open(path, "rb") as handle:
                    feed = parse_feed(handle.read())
            except OSError as error:
                raise FetchError(f"{path}: cannot read ({error.strerror})") from None
            except ParseError as error:
                raise FetchError(f"{path}: {error}") from None
            except ArxivAPIError as error:
                raise ArxivAPIError(f"{path}: recorded arXiv API error: {error}") from None
            result.papers.extend(feed.papers)
            result.skipped.extend(feed.skipped)
        result.total_results = len(result.papers) + len(result.skipped)
        return result
