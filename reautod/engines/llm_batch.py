"""Agent replies of many calls decoded together: llama.cpp sequences in one context.

One context holds `sequences` llama.cpp sequences, each with a KV cache of `n_ctx_seq` tokens.
A single driver thread evaluates one batch per step: the next token of every reply being
generated, plus up to `chunk` tokens of the prompts of replies just admitted. A caller who starts
waiting therefore shares the next step instead of queueing behind the whole replies of other
calls, and on a CPU, where a small model's step costs about the same for one token as for five,
five calls generate at nearly the speed of one.

A sequence keeps what its KV cache holds after a reply. The next request of the same call (or,
for a new call, the sequence that shares the longest prefix with it, such as the campaign's
system prompt) evaluates only the tokens after the common prefix: the system prompt and the
history are not evaluated again on every turn.

Requests come from threads (the LLM engine's scheduler workers, one per sequence) through
`BatchDecoder.submit`; pieces of text come back on the request's queue as they are sampled.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reautod.errors import EngineError, UnavailableError, ValidationError

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)

# The sampler llama-cpp-python's create_chat_completion uses by default, at our temperature.
TOP_K, TOP_P, MIN_P = 40, 0.95, 0.05


@dataclass(frozen=True)
class ReplyEnd:
    """The last item of a request's queue."""

    prompt_tokens: int  # the whole prompt (for the cost meter)


@dataclass(eq=False)
class _Request:
    tokens: list[int]
    call_id: str
    limit: int
    temperature: float
    cancelled: Callable[[], bool]
    out: queue.SimpleQueue[str | ReplyEnd | BaseException] = field(
        default_factory=queue.SimpleQueue)


@dataclass(eq=False)
class _Sequence:
    """One llama.cpp sequence: what its KV cache holds and the reply it is working on."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)  # evaluated, in position order
    call_id: str | None = None  # whose conversation the cache holds
    used_at: float = 0.0
    request: _Request | None = None
    pending: list[int] = field(default_factory=list)  # prompt tokens still to evaluate
    admitted: int = 0  # admission order
    next_token: int | None = None  # sampled, to be evaluated in the next step
    generated: int = 0
    sampler: Any = None
    text: Any = None  # an incremental UTF-8 decoder: a character split over tokens waits

    def common_prefix(self, tokens: list[int]) -> int:
        n = 0
        for ours, theirs in zip(self.tokens, tokens, strict=False):
            if ours != theirs:
                break
            n += 1
        return n


class BatchDecoder:
    """The sequences of one llama.cpp context over `model`'s weights, served by one thread.

    Build on the model's own thread after loading it (blocking); `close()` when no request is in
    flight any more (the engine's scheduler has stopped its workers).
    """

    def __init__(self, model: Llama, *, sequences: int, n_ctx_seq: int, threads: int,
                 chunk: int = 128, gpu: bool = False, warm_up: bool = True) -> None:
        import llama_cpp

        if sequences < 1:
            raise ValueError("sequences must be at least 1")
        self._llama = llama_cpp
        self.sequences = sequences
        self.chunk = chunk
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx_seq * sequences
        params.n_batch = params.n_ubatch = chunk + sequences
        params.n_seq_max = sequences
        # one pool of cells: a prefix two sequences share (the system prompt) is stored once
        params.kv_unified = True
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if gpu
                                  else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        params.no_perf = True
        # llama.cpp would warn that the pool (every sequence's cells) passes the model's training
        # context, which no sequence does: each is held to n_ctx_seq here. (llama-cpp-python
        # prints llama.cpp's warnings at its logger's ERROR level.)
        llama_log = logging.getLogger("llama-cpp-python")
        level = llama_log.level
        llama_log.setLevel(logging.CRITICAL)
        try:
            ctx = llama_cpp.llama_init_from_model(model.model, params)
        finally:
            llama_log.setLevel(level)
        if not ctx:
            raise EngineError(f"llama.cpp could not make a context of {sequences} sequences x "
                              f"{n_ctx_seq} tokens", code="llm_failed")
        self._ctx = ctx
        self.n_ctx_seq = n_ctx_seq
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._vocab = llama_cpp.llama_model_get_vocab(model.model)
        self._batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self._piece = ctypes.create_string_buffer(256)
        self._sequences = [_Sequence(seq_id=i) for i in range(sequences)]
        self._waiting: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._admissions = 0
        self.tokens_generated = 0  # sampled, including those a cancelled caller never read
        self.most_in_one_step = 0  # the most replies that shared one evaluation
        self.prompt_tokens_reused = 0
        self.prompt_tokens_evaluated = 0
        if warm_up:
            # The first evaluation allocates llama.cpp's compute buffers: ~3 s for SmolLM2-135M
            # on a busy 2-core box, which the first caller of the day would otherwise wait for.
            tokens = model.tokenize(b"Hello.")
            for position, token in enumerate(tokens):
                self._put(position, token, position, 0, position == len(tokens) - 1)
            self._decode(len(tokens))
            self._forget(self._sequences[0])
        self._thread = threading.Thread(target=self._drive, name="engine-llm-batch", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ request side (any thread)

    def submit(self, tokens: list[int], *, call_id: str, limit: int, temperature: float,
               cancelled: Callable[[], bool]) -> Iterator[str | ReplyEnd]:
        """Generate after `tokens`; yields text pieces, then one ReplyEnd. Stops early (the
        sequence is freed at the next step) once `cancelled()` is true."""
        if not tokens:
            raise ValidationError("the prompt is empty")
        if len(tokens) >= self.n_ctx_seq:
            raise ValidationError(f"the prompt has {len(tokens)} tokens; a sequence holds "
                                  f"{self.n_ctx_seq} (models.n_ctx)")
        request = _Request(tokens, call_id, limit, temperature, cancelled)
        with self._cond:
            if self._closed:
                raise UnavailableError("llm engine is closed")
            self._waiting.append(request)
            self._cond.notify()
        while True:
            item = request.out.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if isinstance(item, ReplyEnd):
                return

    def close(self, timeout_s: float = 5.0) -> bool:
        """Stop the driver and free the context; False (nothing freed) if it did not stop."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            return False
        closed = UnavailableError("llm engine is closed")
        for sequence in self._sequences:
            self._end(sequence, closed)
        for request in self._waiting:
            request.out.put(closed)
        llama = self._llama
        llama.llama_batch_free(self._batch)
        llama.llama_free(self._ctx)
        return True

    # ------------------------------------------------------------------ the driver thread

    def _drive(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._waiting and not self._busy():
                    self._cond.wait()
                if self._closed:
                    return
                while self._waiting and self._admit(self._waiting[0]):
                    self._waiting.popleft()
            try:
                self._step()
            except Exception as err:  # a llama.cpp failure: these replies fail, the engine lives
                log.exception("llm batch step failed")
                failure = EngineError(f"llm engine failed: {err}", code="llm_failed")
                for sequence in self._sequences:
                    if sequence.request is not None:
                        self._forget(sequence)
                        self._end(sequence, failure)

    def _busy(self) -> bool:
        return any(s.request is not None for s in self._sequences)

    def _admit(self, request: _Request) -> bool:
        """Put `request` on a free sequence: its call's own, else the one sharing the longest
        prefix with it, else the least recently used. Where another sequence (busy or not) holds
        a longer prefix of the prompt, its cells are shared instead of evaluated again. False
        when every sequence is busy."""
        free = [s for s in self._sequences if s.request is None]
        if not free:
            return False
        tokens = request.tokens
        prefix = {s.seq_id: s.common_prefix(tokens) for s in self._sequences}
        sequence = max(free, key=lambda s: (s.call_id == request.call_id, prefix[s.seq_id],
                                            -s.used_at))
        donor = max(self._sequences, key=lambda s: prefix[s.seq_id])
        # At least the prompt's last token is evaluated again: its logits give the first token.
        limit = len(tokens) - 1
        keep = min(prefix[sequence.seq_id], limit)
        shared = min(prefix[donor.seq_id], limit)
        llama, memory, seq_id = self._llama, self._memory, sequence.seq_id
        if shared > keep:
            self._forget(sequence)
            llama.llama_memory_seq_cp(memory, donor.seq_id, seq_id, 0, shared)
            sequence.tokens = donor.tokens[:shared]
            keep = shared
        elif not llama.llama_memory_seq_rm(memory, seq_id, keep, -1):
            self._forget(sequence)
            keep = 0
        del sequence.tokens[keep:]
        sequence.call_id = request.call_id
        sequence.request = request
        sequence.pending = request.tokens[keep:]
        self._admissions += 1
        sequence.admitted = self._admissions
        sequence.next_token = None
        sequence.generated = 0
        sequence.sampler = self._sampler(request.temperature)
        sequence.text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.prompt_tokens_reused += keep
        return True

    def _forget(self, sequence: _Sequence) -> None:
        self._llama.llama_memory_seq_rm(self._memory, sequence.seq_id, -1, -1)
        sequence.tokens.clear()

    def _sampler(self, temperature: float) -> Any:
        llama = self._llama
        chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        if temperature <= 0:
            llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_greedy())
            return chain
        for sampler in (llama.llama_sampler_init_top_k(TOP_K),
                        llama.llama_sampler_init_top_p(TOP_P, 1),
                        llama.llama_sampler_init_min_p(MIN_P, 1),
                        llama.llama_sampler_init_temp(temperature),
                        llama.llama_sampler_init_dist(random.getrandbits(32))):
            llama.llama_sampler_chain_add(chain, sampler)
        return chain

    def _step(self) -> None:
        """Drop cancelled replies, evaluate one batch, sample each reply that got logits."""
        for sequence in self._sequences:
            if sequence.request is not None and sequence.request.cancelled():
                self._end(sequence, None)
        outputs: list[tuple[_Sequence, int]] = []
        n = 0

        def add(sequence: _Sequence, token: int, logits: bool) -> None:
            nonlocal n
            self._put(n, token, len(sequence.tokens), sequence.seq_id, logits)
            sequence.tokens.append(token)
            if logits:
                outputs.append((sequence, n))
            n += 1

        active = [s for s in self._sequences if s.request is not None]
        for sequence in active:  # every reply's next token first: one each
            if sequence.next_token is not None:
                add(sequence, sequence.next_token, True)
                sequence.next_token = None
        budget = self.chunk
        for sequence in sorted(active, key=lambda s: s.admitted):  # then prompts, in chunks,
            if budget <= 0:  # the longest-waiting first
                break
            take = sequence.pending[:budget]
            del sequence.pending[:len(take)]
            budget -= len(take)
            self.prompt_tokens_evaluated += len(take)
            for i, token in enumerate(take):
                add(sequence, token, not sequence.pending and i == len(take) - 1)
        if n == 0:
            return
        self._decode(n)
        self.most_in_one_step = max(self.most_in_one_step, len(outputs))
        for sequence, index in outputs:
            self._sample(sequence, index)

    def _put(self, index: int, token: int, position: int, seq_id: int, logits: bool) -> None:
        batch = self._batch
        batch.token[index] = token
        batch.pos[index] = position
        batch.n_seq_id[index] = 1
        batch.seq_id[index][0] = seq_id
        batch.logits[index] = logits

    def _decode(self, n: int) -> None:
        self._batch.n_tokens = n
        status = self._llama.llama_decode(self._ctx, self._batch)
        if status != 0:  # what the cache holds is unknown now: the driver forgets these
            raise EngineError(f"llama_decode returned {status}", code="llm_failed")

    def _sample(self, sequence: _Sequence, index: int) -> None:
        llama = self._llama
        request = sequence.request
        assert request is not None
        token = llama.llama_sampler_sample(sequence.sampler, self._ctx, index)
        if llama.llama_vocab_is_eog(self._vocab, token):
            self._end(sequence, None)
            return
        sequence.generated += 1
        self.tokens_generated += 1
        text = sequence.text.decode(self._token_bytes(token))
        if text:
            request.out.put(text)
        if (sequence.generated >= request.limit
                or len(sequence.tokens) >= self.n_ctx_seq):
            self._end(sequence, None)
        else:
            sequence.next_token = token

    def _token_bytes(self, token: int) -> bytes:
        size = self._llama.llama_token_to_piece(self._vocab, token, self._piece,
                                                len(self._piece), 0, False)
        if size < 0:  # longer than the buffer: grow it once for this piece
            self._piece = ctypes.create_string_buffer(-size)
            size = self._llama.llama_token_to_piece(self._vocab, token, self._piece,
                                                    len(self._piece), 0, False)
        return self._piece.raw[:size]

    def _end(self, sequence: _Sequence, failure: BaseException | None) -> None:
        """Finish the sequence's reply (a failure, or its end) and free the sequence."""
        request = sequence.request
        if request is None:
            return
        if sequence.sampler is not None:
            self._llama.llama_sampler_free(sequence.sampler)
        sequence.sampler = None
        sequence.request = None
        sequence.pending = []
        sequence.next_token = None
        sequence.used_at = time.monotonic()
        if failure is not None:
            request.out.put(failure)
            return
        tail = sequence.text.decode(b"", final=True) if sequence.text is not None else ""
        if tail:
            request.out.put(tail)
        request.out.put(ReplyEnd(len(request.tokens)))
