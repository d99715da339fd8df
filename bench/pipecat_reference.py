"""A stock Pipecat 1.14 Twilio bot: the reference `bench_vs_pipecat.py` measures reautod against.

    PYTHONPATH=. .venv/bin/python bench/pipecat_reference.py --stt DIR --llm GGUF --tts ONNX
        [--port 0] [--until-stdin-closes] [--log-level WARNING]

Prints `READY <port>` on stdout once uvicorn listens on 127.0.0.1:<port>; Twilio Media Streams
go to ws://127.0.0.1:<port>/ws. It stops (uvicorn, then its llama server) on SIGINT or SIGTERM,
and with `--until-stdin-closes` when its stdin closes, so the benchmark that started it cannot
leave it (or the llama server) running.

What it is: pipecat-examples' twilio-chatbot (inbound/bot.py and server.py) written against the
1.14 API, which is also what the wheel's own `pipecat init` Twilio template generates: FastAPI +
uvicorn, one WebSocket endpoint, `parse_telephony_websocket`, TwilioFrameSerializer,
FastAPIWebsocketTransport, an LLMContextAggregatorPair whose user side runs SileroVADAnalyzer()
and the default stop strategy (LocalSmartTurnAnalyzerV3, its ONNX from the wheel), STT -> user
aggregator -> LLM -> TTS -> output -> assistant aggregator in a PipelineWorker (PipelineTask is
deprecated since 1.3) with the example's PipelineParams (8 kHz in and out, metrics on), run by a
WorkerRunner; every service built per call with its stock settings; on connect the example's
greeting ("Please introduce yourself to the user." and an LLMRunFrame); on disconnect the runner
is cancelled. The services are Pipecat's own local ones on the model files reautod runs.

Deviations from stock, and why:

- STT: WhisperSTTService(settings=Settings(model=<the faster-whisper directory>)) instead of the
  default hub name (distil-medium.en): the same model as reautod, and no hub download. device and
  compute_type keep their defaults ("auto", "default": float32 on a CPU; reautod runs int8).
- LLM: OpenAILLMService(base_url=<llama server>/v1, api_key="local", model=<the GGUF's name>)
  instead of OpenAI: the GGUF served by `python -m llama_cpp.server` (the package's own server),
  started here as a child on a free 127.0.0.1 port with its defaults (1 generation thread,
  2 batch threads, n_ctx 2048, one model lock, and `interrupt_requests` on: a streaming reply is
  ended early when another request is waiting for the model, as happens with simultaneous calls).
  The service is OpenAILLMService with `supports_developer_role = False`, as Pipecat's
  OLLamaLLMService has: llama_cpp.server refuses "developer" messages with a 500, and 1.14's
  user aggregator sends one by default for a turn with no transcript that cut the bot off ("ask
  them to repeat"), so stock, such a turn got an error and no answer (seen at 5 calls).
- TTS: PiperTTSService(settings=Settings(voice=<the voice's name>), download_dir=<its directory>)
  instead of the example's cloud TTS: 1.14's PiperTTSService runs the `piper` package in-process
  and downloads a voice only when `<download_dir>/<voice>.onnx` is missing; here it is present.
- The system prompt is a short sales agent's, not the example's teacher, since reautod is one.
- TwilioFrameSerializer(params=InputParams(auto_hang_up=False)): the auto hang-up calls Twilio's
  REST API with an account SID and auth token; offline there are none (the serializer refuses
  to start without them), and the simulated caller hangs up itself. The example's get_call_info
  (a Twilio REST lookup) is left out for the same reason.
- Left out: the AudioBufferProcessor that records each call to a WAV file in the working
  directory (a recording, not the bot; the benchmark records nothing on reautod's side either),
  the CORS middleware and the TwiML POST route (no browser, no Twilio webhook here), and
  python-dotenv (no keys to load).
- Logging at WARNING by default instead of the example's DEBUG, so several calls do not spend
  their CPU on log lines that reautod, at INFO, does not write.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import uvicorn
from fastapi import FastAPI, WebSocket
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

WS_PATH = "/ws"
SYSTEM_PROMPT = (
    "You are Sam, a friendly sales agent for Northwind Homes on a phone call with a lead who asked "
    "about selling their house. Your output will be converted to audio so don't include special "
    "characters in your answers. Keep every answer to one or two short sentences."
)
LLAMA_START_TIMEOUT_S = 120.0


class LlamaServerLLMService(OpenAILLMService):
    """OpenAILLMService for llama_cpp.server, which refuses the "developer" role (a 500 with a
    validation error); as Pipecat's own services for such servers do (OLLamaLLMService), the
    adapter then sends those messages as "user" ones."""

    supports_developer_role = False


@dataclass(frozen=True)
class Models:
    """The local model files; `llm_url` is the llama server's OpenAI-compatible base URL."""

    stt: Path  # a faster-whisper model directory
    llm_name: str
    llm_url: str
    tts: Path  # a Piper voice's .onnx (its .onnx.json beside it)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def llama_server(gguf: Path) -> AsyncIterator[str]:
    """`python -m llama_cpp.server` on the GGUF, stock settings, on a free local port; yields its
    /v1 URL once /v1/models answers, and stops it on exit."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
            "--host", "127.0.0.1", "--port", str(port),
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            base = f"http://127.0.0.1:{port}/v1"
            await _wait_until_serving(proc, f"{base}/models", log)
            yield base
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _wait_until_serving(proc: asyncio.subprocess.Process, url: str, log: IO[bytes]
                              ) -> None:
    deadline = time.monotonic() + LLAMA_START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"llama_cpp.server exited ({proc.returncode}) at start:\n"
                                   f"{_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"llama_cpp.server did not answer {url} in {LLAMA_START_TIMEOUT_S:g} s")


def _tail(log: IO[bytes], size: int = 2000) -> str:
    log.seek(0)
    return log.read()[-size:].decode(errors="replace")


async def run_bot(transport: FastAPIWebsocketTransport, models: Models) -> None:
    """The example's run_bot: services per call, the stock pipeline, a greeting on connect."""
    llm = LlamaServerLLMService(
        api_key="local",
        base_url=models.llm_url,
        settings=LlamaServerLLMService.Settings(model=models.llm_name,
                                           system_instruction=SYSTEM_PROMPT),
    )
    stt = WhisperSTTService(settings=WhisperSTTService.Settings(model=str(models.stt)))
    tts = PiperTTSService(settings=PiperTTSService.Settings(voice=models.tts.stem),
                          download_dir=models.tts.parent)

    context = LLMContext()
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer()),
    )
    pipeline = Pipeline([
        transport.input(),
        stt,
        user_aggregator,
        llm,
        tts,
        transport.output(),
        assistant_aggregator,
    ])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000,
                              enable_metrics=True, enable_usage_metrics=True),
    )
    # uvicorn owns the signals.
    runner = WorkerRunner(handle_sigint=False)

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport: object, client: object) -> None:
        context.add_message({"role": "user", "content": "Please introduce yourself to the user."})
        await worker.queue_frames([LLMRunFrame()])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: object, client: object) -> None:
        await runner.cancel()

    await runner.add_workers(worker)
    await runner.run()


async def bot(websocket: WebSocket, models: Models) -> None:
    """The example's bot(): read Twilio's `connected` and `start`, build the transport."""
    _, call_data = await parse_telephony_websocket(websocket)
    serializer = TwilioFrameSerializer(
        stream_sid=call_data["stream_id"],
        call_sid=call_data["call_id"],
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True,
                                      add_wav_header=False, serializer=serializer),
    )
    await run_bot(transport, models)


def create_app(models: Models) -> FastAPI:
    app = FastAPI()

    @app.websocket(WS_PATH)
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await bot(websocket, models)
        except Exception:
            # The example prints the error and closes; one call's failure must not stop the rest.
            logger.exception("call failed")
            with contextlib.suppress(Exception):
                await websocket.close()

    return app


async def stdin_closed() -> None:
    """Returns when stdin reaches end of file (the parent closed it, or died)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def serve(args: argparse.Namespace) -> None:
    # 1. the LLM server, stock, on its own port
    async with llama_server(args.llm) as llm_url:
        models = Models(stt=args.stt, llm_name=args.llm.stem, llm_url=llm_url, tts=args.tts)
        # 2. the socket, bound before uvicorn so its port is known
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", args.port))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(models), log_level="warning"))
        # uvicorn handles SIGINT/SIGTERM while it serves and raises them again once it has
        # stopped; these handlers take that second delivery, so step 5 still runs.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
        watch: asyncio.Task[None] | None = None
        try:
            # 3. ready only once uvicorn listens
            while not server.started:
                if serving.done():
                    serving.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.05)
            print(f"READY {port}", flush=True)
            # 4. serve until a signal (uvicorn stops) or the parent closes stdin
            waits: set[asyncio.Task[None]] = {serving}
            if args.until_stdin_closes:
                watch = asyncio.create_task(stdin_closed(), name="stdin")
                waits.add(watch)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # 5. uvicorn, then (leaving the `async with`) the llama server
            server.should_exit = True
            if watch is not None:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            await asyncio.gather(serving, return_exceptions=True)
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stt", type=Path, required=True, help="faster-whisper model directory")
    parser.add_argument("--llm", type=Path, required=True, help="GGUF file")
    parser.add_argument("--tts", type=Path, required=True, help="Piper voice .onnx")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--until-stdin-closes", action="store_true",
                        help="stop when stdin reaches end of file")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
