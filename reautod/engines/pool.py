"""The LLM pool: OpenAI-compatible servers (llama.cpp's server, Ollama, vLLM) behind one
`LanguageModel`, for a site that outgrows the in-process model.

Invariants:
- Routing is least-loaded: of the endpoints that are not known down and whose circuit is not
  open, the one with the smallest share of its `max_concurrent` slots in use (then the fewest
  requests served, then config order). With every slot taken, a request waits for one, up to
  `first_token_timeout_s`.
- A slot is held from routing until the stream ends, however it ends: finished, failed, or
  closed by the caller (barge-in: closing the iterator closes the HTTP stream, so the server
  stops generating, and frees the slot at once).
- Retries only before the first token: a failure before it tries the next endpoint (up to
  `attempts` endpoints, each once); a failure after it is the caller's, since the caller may
  already have heard the first words.
- Each endpoint has its own circuit, `llm_pool:<name>` (reautod.resilience): its failures open
  it and routing skips it until the half-open probe. A caller closing a stream is no failure.
- A failed connection marks the endpoint down at once; the health loop (GET `<url>/models`
  every `health_interval_s`) marks it up again when it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from reautod.config import LlmEndpointSettings, LlmPoolSettings
from reautod.engines.base import (
    ChatMessage,
    EngineHealth,
    EngineState,
    EngineStats,
    RequestTiming,
    TokenChunk,
)
from reautod.engines.llm import validate_messages
from reautod.engines.openai_sse import Closing, PoolJsonModel, chunk_delta, sse_data
from reautod.engines.scheduler import EngineObserver
from reautod.errors import EngineError, UnavailableError, ValidationError
from reautod.resilience.breaker import BreakerOpenError
from reautod.resilience.service import Resilience

log = logging.getLogger(__name__)

SERVICE = "llm_pool"
EndpointState = Literal["unknown", "up", "down"]


@dataclass(frozen=True)
class EndpointStatus:
    """What `engines.status` and `reautoctl health` show for one endpoint."""

    name: str
    url: str
    model: str
    state: EndpointState
    circuit: str  # closed / open / half_open
    in_flight: int
    max_concurrent: int
    requests: int
    failures: int
    cancelled: int
    last_error: str


class _Rejected(EngineError):
    """The endpoint answered 4xx: it is up and refused this request on purpose."""

    code = "llm_rejected"


def _counts_against_circuit(err: BaseException) -> bool:
    return isinstance(err, UnavailableError | EngineError) and not isinstance(err, _Rejected)


class PoolEndpoint:
    """One endpoint's state; owned by its `LlmPool` (mutated on the event loop only)."""

    def __init__(self, settings: LlmEndpointSettings) -> None:
        self.settings = settings
        self.state: EndpointState = "unknown"
        self.in_flight = 0
        self.requests = 0
        self.failures = 0
        self.cancelled = 0
        self.last_error = ""
        self.tokenize: Literal["unknown", "extras", "root", "none"] = "unknown"

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def load(self) -> float:
        return self.in_flight / self.settings.max_concurrent

    @property
    def full(self) -> bool:
        return self.in_flight >= self.settings.max_concurrent

    @property
    def root(self) -> str:
        """The server's root URL: `/v1` dropped (llama.cpp's tokenizer lives there)."""
        url = self.settings.url
        return url[: -len("/v1")] if url.endswith("/v1") else url

    def mark_down(self, reason: str) -> None:
        if self.state != "down":
            log.warning("llm endpoint %s is down: %s", self.name, reason)
        self.state = "down"
        self.last_error = reason


class LlmPool:
    """`LanguageModel` over the configured endpoints; `start()` it on the loop, `close()` it."""

    def __init__(self, settings: LlmPoolSettings, resilience: Resilience, *, max_tokens: int,
                 temperature: float, timeout_s: float,
                 client: httpx.AsyncClient | None = None) -> None:
        if not settings.endpoints:
            raise ValueError("an LLM pool needs at least one endpoint")
        self.settings = settings
        self.resilience = resilience
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.endpoints = [PoolEndpoint(e) for e in settings.endpoints]
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(
            settings.first_token_timeout_s, connect=settings.connect_timeout_s))
        self._slots = asyncio.Condition()
        self._health_task: asyncio.Task[None] | None = None
        self._stats = EngineStats()
        self.observer: EngineObserver | None = None  # the daemon's metrics, like a scheduler's

    # -- lifecycle

    async def start(self) -> None:
        """Check every endpoint once, then keep checking them in the background."""
        await self.check_all()
        self._health_task = asyncio.create_task(self._health_loop(), name="llm-pool-health")

    async def close(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None
        await self._client.aclose()

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            await self.check_all()

    async def check_all(self) -> None:
        await asyncio.gather(*(self._check(e) for e in self.endpoints))

    async def _check(self, endpoint: PoolEndpoint) -> None:
        try:
            response = await self._client.get(f"{endpoint.settings.url}/models",
                                              timeout=self.settings.connect_timeout_s)
            response.raise_for_status()
        except httpx.HTTPError as err:
            endpoint.mark_down(f"health check: {type(err).__name__}: {err}")
            return
        if endpoint.state != "up":
            log.info("llm endpoint %s is up", endpoint.name)
            endpoint.state = "up"
            async with self._slots:
                self._slots.notify_all()

    # -- routing

    def _usable(self, endpoint: PoolEndpoint, model: str | None) -> bool:
        if endpoint.state == "down":
            return False
        if model is not None and endpoint.settings.model != model:
            return False
        circuit = self.resilience.state(SERVICE, endpoint.name)
        return circuit != "open"

    def _pick(self, tried: set[str], model: str | None) -> PoolEndpoint | None:
        """The least-loaded usable endpoint with a free slot, or None (see module docstring)."""
        free = [e for e in self.endpoints
                if e.name not in tried and self._usable(e, model) and not e.full]
        if not free:
            return None
        return min(free, key=lambda e: (e.load, e.requests, self.endpoints.index(e)))

    def _why_none(self, tried: set[str], model: str | None) -> str:
        reasons = []
        for e in self.endpoints:
            if model is not None and e.settings.model != model:
                continue
            if e.name in tried:
                reasons.append(f"{e.name} failed ({e.last_error})")
            elif e.state == "down":
                reasons.append(f"{e.name} down ({e.last_error})")
            elif self.resilience.state(SERVICE, e.name) == "open":
                reasons.append(f"{e.name} circuit open")
            else:
                reasons.append(f"{e.name} busy ({e.in_flight}/{e.settings.max_concurrent})")
        if not reasons:
            return f"no endpoint serves model {model!r}"
        return "; ".join(reasons)

    async def _acquire(self, tried: set[str], deadline: float,
                       model: str | None) -> PoolEndpoint:
        """A slot on the least-loaded endpoint, waiting for one while some endpoint could free
        one; UnavailableError when none can serve before `deadline`."""
        loop = asyncio.get_running_loop()
        async with self._slots:
            while True:
                endpoint = self._pick(tried, model)
                if endpoint is not None:
                    endpoint.in_flight += 1
                    endpoint.requests += 1
                    return endpoint
                waiting_helps = any(
                    e.name not in tried and self._usable(e, model) and e.full
                    for e in self.endpoints)
                left = deadline - loop.time()
                if not waiting_helps or left <= 0:
                    raise UnavailableError(
                        f"no LLM endpoint can take the request: {self._why_none(tried, model)}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slots.wait(), left)

    async def _release(self, endpoint: PoolEndpoint) -> None:
        async with self._slots:
            endpoint.in_flight -= 1
            self._slots.notify_all()

    def _failed(self) -> None:
        self._stats.failures += 1
        if self.observer is not None:
            self.observer.engine_failed("llm")

    # -- LanguageModel

    async def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                          max_tokens: int | None = None, model: str | None = None,
                          json_schema: dict[str, Any] | None = None
                          ) -> AsyncIterator[TokenChunk]:
        """Stream the reply from the least-loaded endpoint (serving `model`, when named);
        closing the iterator closes the HTTP stream and frees the slot. `json_schema`: the reply
        is JSON of that schema (llama.cpp turns it into a grammar), sampled greedily."""
        chat = validate_messages(messages)
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise ValidationError("max_tokens must be a positive integer")
        limit = min(max_tokens or self.max_tokens, self.max_tokens)
        loop = asyncio.get_running_loop()
        queued = loop.time()
        deadline = queued + self.settings.first_token_timeout_s
        tried: set[str] = set()
        last: Exception | None = None
        self._stats.requests += 1
        for _ in range(self.settings.attempts):
            try:
                endpoint = await self._acquire(tried, deadline, model)
            except UnavailableError as err:
                self._failed()
                if last is None:
                    raise
                raise EngineError(f"{last} (and {err.message})", code=getattr(
                    last, "code", "engine_failed")) from last
            tried.add(endpoint.name)
            spoke = False
            ended = False  # finished or failed: not closed by the caller
            try:
                # aclosing: a caller closing this stream closes the HTTP stream now, not when
                # the inner generator is collected
                async with self.resilience.guard(SERVICE, key=endpoint.name,
                                                 transient=_counts_against_circuit), \
                        contextlib.aclosing(self._stream_one(endpoint, chat, limit, queued,
                                                             json_schema)) as chunks:
                    async for chunk in chunks:
                        spoke = True
                        if chunk.timing is not None and self.observer is not None:
                            self.observer.observe_engine_request("llm", chunk.timing)
                        yield chunk
                ended = True
                self._stats.completed += 1
                return
            except BreakerOpenError as err:  # opened between routing and the request
                ended = True
                last = err
            except (EngineError, UnavailableError) as err:
                ended = True
                endpoint.failures += 1
                endpoint.last_error = err.message
                if spoke or isinstance(err, _Rejected):
                    self._failed()
                    raise
                log.warning("llm endpoint %s failed before the first token (call %s): %s",
                            endpoint.name, call_id, err.message)
                last = err
            finally:
                if not ended:  # closed or cancelled by the caller
                    endpoint.cancelled += 1
                    self._stats.cancelled += 1
                    if self.observer is not None:
                        self.observer.engine_cancelled("llm")
                await self._release(endpoint)
        self._failed()
        assert last is not None
        raise last

    async def _stream_one(self, endpoint: PoolEndpoint, chat: list[dict[str, str]], limit: int,
                          queued: float, json_schema: dict[str, Any] | None
                          ) -> AsyncGenerator[TokenChunk, None]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.timeout_s
        body: dict[str, Any] = {"model": endpoint.settings.model, "messages": chat,
                                "stream": True, "max_tokens": limit,
                                "temperature": self.temperature}
        if json_schema is not None:
            body["response_format"] = {"type": "json_object", "schema": json_schema}
            body["temperature"] = 0.0
        prompt_tokens: int | None = None
        name = endpoint.name
        request = self._client.build_request("POST", f"{endpoint.settings.url}/chat/completions",
                                             json=body)
        try:
            async with contextlib.aclosing(Closing(await self._send(request))) as held:
                response = held.response
                if response.status_code >= 400:
                    text = (await response.aread()).decode(errors="replace")[:200]
                    kind = _Rejected if response.status_code < 500 else EngineError
                    raise kind(f"llm endpoint {name} answered {response.status_code}: {text}")
                done = False
                async for line in response.aiter_lines():
                    if loop.time() > deadline:
                        raise EngineError(f"llm endpoint {name} timed out after "
                                          f"{self.timeout_s:g} s", code="engine_timeout")
                    data = sse_data(line)
                    if data is None:
                        continue
                    if data == "[DONE]":
                        done = True
                        break
                    text, usage = chunk_delta(name, data)
                    if usage is not None:
                        prompt_tokens = usage
                    if text:
                        yield TokenChunk(text)
                if not done:  # llama.cpp's Python server, for one, ends so on a context overflow
                    raise EngineError(f"llm endpoint {name} ended the reply unfinished (no "
                                      "[DONE]; a prompt over its context window?)")
        except httpx.ConnectError as err:
            endpoint.mark_down(f"cannot connect: {err}")
            raise UnavailableError(f"llm endpoint {name}: cannot connect: {err}") from err
        except httpx.TimeoutException as err:
            raise EngineError(f"llm endpoint {name} timed out: {type(err).__name__}",
                              code="engine_timeout") from err
        except httpx.HTTPError as err:  # the connection broke mid-reply: the server went away
            endpoint.mark_down(f"{type(err).__name__}: {err}")
            raise EngineError(f"llm endpoint {name} failed: {type(err).__name__}: {err}") from err
        finished = loop.time()
        yield TokenChunk("", timing=RequestTiming(started - queued, finished - started),
                         prompt_tokens=prompt_tokens)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """Send, streaming the response; once more on a fresh connection if a kept-alive one
        turns out closed (the server dropped it after a broken reply) before any answer."""
        try:
            return await self._client.send(request, stream=True)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            return await self._client.send(request, stream=True)

    def json_model(self, on_usage: Callable[[str, int, int, float], None] | None = None,
                   model: str | None = None) -> PoolJsonModel:
        """The pool (the endpoints serving `model`, None: all) as the dialogue's constrained-JSON
        model (reautod.dialogue.llm_extract)."""
        return PoolJsonModel(self, on_usage, model)

    # -- tokens

    async def count_tokens(self, text: str, model: str | None = None) -> int | None:
        """Tokens of `text` by an endpoint's own tokenizer (llama.cpp's `/extras/tokenize/count`
        or `/tokenize`), or None when no usable endpoint has one."""
        for endpoint in self.endpoints:
            if not self._usable(endpoint, model) or endpoint.tokenize == "none":
                continue
            count = await self._tokenize(endpoint, text)
            if count is not None:
                return count
        return None

    async def _tokenize(self, endpoint: PoolEndpoint, text: str) -> int | None:
        ways: list[tuple[Literal["extras", "root"], str, dict[str, Any]]] = [
            ("extras", "/extras/tokenize/count", {"input": text}),
            ("root", "/tokenize", {"content": text}),
        ]
        for kind, path, body in ways:
            if endpoint.tokenize not in ("unknown", kind):
                continue
            try:
                response = await self._client.post(endpoint.root + path, json=body,
                                                   timeout=self.settings.connect_timeout_s)
            except httpx.HTTPError:
                return None  # down now: ask again next time
            if response.status_code in (404, 405, 501):
                continue
            if response.status_code >= 400:
                return None
            data = response.json()
            count = data.get("count") if kind == "extras" else len(data.get("tokens") or ())
            if isinstance(count, int):
                endpoint.tokenize = kind
                return count
        endpoint.tokenize = "none"
        return None

    # -- health

    def statuses(self) -> list[EndpointStatus]:
        return [EndpointStatus(
            name=e.name, url=e.settings.url, model=e.settings.model, state=e.state,
            circuit=self.resilience.state(SERVICE, e.name), in_flight=e.in_flight,
            max_concurrent=e.settings.max_concurrent, requests=e.requests, failures=e.failures,
            cancelled=e.cancelled, last_error=e.last_error) for e in self.endpoints]

    def health(self) -> EngineHealth:
        statuses = self.statuses()
        usable = [s for s in statuses if s.state != "down" and s.circuit != "open"]
        model = "pool: " + ", ".join(f"{s.name}={s.url}" for s in statuses)
        detail = "; ".join(f"{s.name} {s.state}, circuit {s.circuit}, "
                           f"{s.in_flight}/{s.max_concurrent} busy" for s in statuses)
        return EngineHealth("llm", EngineState.READY if usable else EngineState.FAILED, model,
                            detail=detail, queue_depth=0, failures=self._stats.failures)

    def stats(self) -> EngineStats:
        stats = EngineStats(**{k: v for k, v in vars(self._stats).items() if k != "extra"})
        stats.in_flight = sum(e.in_flight for e in self.endpoints)
        stats.extra = {f"{e.name}_in_flight": float(e.in_flight) for e in self.endpoints}
        return stats


def pool_from(settings: LlmPoolSettings, resilience: Resilience, *, max_tokens: int,
              temperature: float, timeout_s: float) -> LlmPool | None:
    """The pool the settings describe, or None without endpoints (the in-process model)."""
    if not settings.endpoints:
        return None
    return LlmPool(settings, resilience, max_tokens=max_tokens, temperature=temperature,
                   timeout_s=timeout_s)

