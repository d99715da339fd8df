"""Random-weight models with the real file formats, small enough to build in well under a second.

They let every engine really load and run on an offline machine or in CI: a llama GGUF with a
SentencePiece tokenizer and a chat template, a CTranslate2 Whisper model with a byte-level BPE
tokenizer, and a Piper-shaped ONNX voice. Their output is noise: test structure, never meaning
(the llama's is random English words and punctuation, so its text has a real reply's shape).
`reautoctl models pull --test` builds them into the models directory (the "test" profile layout).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

SEED = 0


def _atomic_build(dest: Path, build: Callable[[Path], None], *, is_dir: bool) -> Path:
    """Build into a temp sibling, then rename into place, so a half-built model is never seen."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        target = tmp_root / dest.name
        if is_dir:
            target.mkdir()
        build(target)
        if is_dir:
            if dest.exists():
                shutil.rmtree(dest)
            target.rename(dest)
        else:
            # the companion file (`.onnx.json`) lands before the file that names it
            for produced in sorted(tmp_root.iterdir(), reverse=True):
                produced.replace(dest.parent / produced.name)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return dest


# ---------------------------------------------------------------------------------------- llama


def build_tiny_llama(path: Path) -> Path:
    """A 2-layer, 64-wide llama GGUF (~0.9 MB) with an SPM tokenizer and a ChatML template."""
    return _atomic_build(path, _write_tiny_llama, is_dir=False)


# Whole-word pieces: random text from the test LLM comes out about a token per word, with
# sentence ends, the shape of a real model's output (the words are still noise). Bytes were 78% of
# the old vocabulary; llama.cpp holds back their invalid UTF-8, so text dribbled out unpunctuated.
_WORD_LIST = """
the be to of and a in that have i it for not on with he as you do at this but his by from they
we say her she or an will my one all would there their what so up out if about who get which go
me when make can like time no just him know take people into year your good some could them see
other than then now look only come its over think also back after use two how our work first
well way even new want because any these give day most us is are was were has had did said been
am yes okay sure right thanks thank please hello hi bye call calling today tomorrow week month
price cost money pay plan home house roof solar energy bill save saving free minute moment talk
speak help ask question answer number phone email name here where why very really much many more
less little big small great fine nice happy sorry maybe again still never always often soon
later next last long short old young part place case point fact hand eye life world school state
family group problem service company system program business interest offer deal quote estimate
visit schedule appointment morning afternoon evening night let send mail check find tell told
feel try leave keep start stop show hear heard play run move live believe bring happen write
provide sit stand lose add understand need meet include continue set learn change lead watch
follow create open read spend grow walk win teach buy sell agree support remember stay consider
appear wait serve expect build fall reach remain suggest raise pass report decide
"""
_WORDS = _WORD_LIST.split()
_PUNCTUATION = (".", ",", "?", "!")
# Logit offsets per kind of piece (see `_write_tiny_llama`): with llama.cpp's default sampler
# (top-k 40) at the engine's temperature 0.6, about one token in ten is punctuation and a
# sentence ends every dozen words or so; pieces that are only a word's beginning, bytes and
# control tokens never reach the top 40.
_BIAS_WORD, _BIAS_PUNCTUATION, _BIAS_FRAGMENT, _BIAS_BYTE = 0.0, 0.15, -4.0, -8.0


def _write_tiny_llama(out: Path) -> None:
    import gguf

    rng = np.random.default_rng(SEED)
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []
    biases: list[float] = []

    def add(tok: str, score: float, ttype: int, bias: float) -> None:
        tokens.append(tok)
        scores.append(score)
        types.append(ttype)
        biases.append(bias)

    add("<unk>", 0.0, gguf.TokenType.UNKNOWN, _BIAS_BYTE)
    add("<s>", 0.0, gguf.TokenType.CONTROL, _BIAS_BYTE)
    add("</s>", 0.0, gguf.TokenType.CONTROL, _BIAS_BYTE)  # so it never ends a reply early
    for b in range(256):  # SentencePiece's byte fallback: prompts may hold any character
        add(f"<0x{b:02X}>", 0.0, gguf.TokenType.BYTE, _BIAS_BYTE)
    for mark in _PUNCTUATION:
        add(mark, 1.0, gguf.TokenType.NORMAL, _BIAS_PUNCTUATION)
    # SPM merges two adjacent pieces only if the result is in the vocab: add every word prefix.
    words = {"▁" + w for w in _WORDS}
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces = ["▁", *letters, *(w[:k] for w in sorted(words) for k in range(2, len(w) + 1))]
    for piece in dict.fromkeys(pieces):
        add(piece, float(len(piece)), gguf.TokenType.NORMAL,  # longer piece wins
            _BIAS_WORD if piece in words else _BIAS_FRAGMENT)

    # context 4096 = the default models.n_ctx, so llama.cpp does not warn of a training overflow
    n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx = 64, 2, 4, 4, 128, 4096
    head_dim = n_embd // n_head
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    # llama-cpp-python formats chats with the template it finds in the GGUF metadata.
    writer.add_chat_template(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )

    def randn(*shape: int) -> npt.NDArray[np.float32]:
        # numpy shape is (rows, cols), the reverse of ggml's ne
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def rand(name: str, *shape: int) -> None:
        writer.add_tensor(name, randn(*shape))

    def ones(name: str) -> None:
        writer.add_tensor(name, np.ones(n_embd, dtype=np.float32))

    # Random weights alone sample every piece about equally often. Embedding dimension 0 is a
    # constant 1 for every token, so it dominates the residual stream and is ~sqrt(n_embd) after
    # the final norm; output column 0 then adds each piece's bias to its logit (a unigram prior).
    embd = randn(len(tokens), n_embd)
    embd[:, 0] = 1.0
    writer.add_tensor("token_embd.weight", embd)
    ones("output_norm.weight")
    output = randn(len(tokens), n_embd)
    output[:, 0] = np.asarray(biases, dtype=np.float32) / np.sqrt(n_embd)
    writer.add_tensor("output.weight", output)
    for i in range(n_layer):
        p = f"blk.{i}."
        ones(p + "attn_norm.weight")
        rand(p + "attn_q.weight", n_head * head_dim, n_embd)
        rand(p + "attn_k.weight", n_head_kv * head_dim, n_embd)
        rand(p + "attn_v.weight", n_head_kv * head_dim, n_embd)
        rand(p + "attn_output.weight", n_embd, n_head * head_dim)
        ones(p + "ffn_norm.weight")
        rand(p + "ffn_gate.weight", n_ff, n_embd)
        rand(p + "ffn_up.weight", n_ff, n_embd)
        rand(p + "ffn_down.weight", n_embd, n_ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# -------------------------------------------------------------------------------------- whisper


def build_tiny_whisper(directory: Path) -> Path:
    """A 2-layer, 64-wide CTranslate2 Whisper model directory (~2.3 MB), English-only."""
    return _atomic_build(directory, _write_tiny_whisper, is_dir=True)


def _write_tiny_whisper(out: Path) -> None:
    from ctranslate2.specs import whisper_spec
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    rng = np.random.default_rng(SEED)
    d_model, heads, layers, n_mels = 64, 2, 2, 80
    ffn_dim = 4 * d_model
    n_audio_ctx, n_text_ctx = 1500, 448  # fixed by faster-whisper's 30 s / 3000-frame window

    # Byte-level BPE plus Whisper's special tokens, then the timestamp tokens to the vocab's end.
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    merges: list[tuple[str, str]] = []
    for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a"), ("i", "n"), ("e", "r")]:
        merges.append((a, b))
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>",
                "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    tok.add_special_tokens([AddedToken(s, special=True) for s in specials])
    tok.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", special=False) for i in range(1501)])
    tok.save(str(out / "tokenizer.json"))
    size = tok.get_vocab_size(with_added_tokens=True)
    # 51865 would make CTranslate2 treat the model as multilingual (it would need language tokens).
    if size == 51865:
        raise RuntimeError("tiny whisper vocabulary must not have the multilingual size")
    id_to_token = {i: t for t, i in tok.get_vocab(with_added_tokens=True).items()}

    def rand(*shape: int, scale: float = 0.02) -> npt.NDArray[np.float32]:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def layer_norm(spec: object) -> None:
        spec.gamma = np.ones(d_model, np.float32)  # type: ignore[attr-defined]
        spec.beta = np.zeros(d_model, np.float32)  # type: ignore[attr-defined]

    def linear(spec: object, n_out: int, n_in: int) -> None:
        spec.weight = rand(n_out, n_in)  # type: ignore[attr-defined]
        spec.bias = np.zeros(n_out, np.float32)  # type: ignore[attr-defined]

    def self_attention(spec: object) -> None:
        layer_norm(spec.layer_norm)  # type: ignore[attr-defined]
        linear(spec.linear[0], 3 * d_model, d_model)  # type: ignore[attr-defined]  # fused QKV
        linear(spec.linear[1], d_model, d_model)  # type: ignore[attr-defined]

    def feed_forward(spec: object) -> None:
        layer_norm(spec.layer_norm)  # type: ignore[attr-defined]
        linear(spec.linear_0, ffn_dim, d_model)  # type: ignore[attr-defined]
        linear(spec.linear_1, d_model, ffn_dim)  # type: ignore[attr-defined]

    def sinusoids(length: int, channels: int) -> npt.NDArray[np.float32]:
        increment = np.log(10000) / (channels // 2 - 1)
        inv = np.exp(-increment * np.arange(channels // 2))
        t = np.arange(length)[:, None] * inv[None, :]
        return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)

    spec = whisper_spec.WhisperSpec(layers, heads, layers, heads)
    enc = spec.encoder
    enc.conv1.weight = rand(d_model, n_mels, 3)
    enc.conv1.bias = np.zeros(d_model, np.float32)
    enc.conv2.weight = rand(d_model, d_model, 3)
    enc.conv2.bias = np.zeros(d_model, np.float32)
    enc.position_encodings.encodings = sinusoids(n_audio_ctx, d_model)
    for layer in enc.layer:
        self_attention(layer.self_attention)
        feed_forward(layer.ffn)
    layer_norm(enc.layer_norm)
    dec = spec.decoder
    dec.embeddings.weight = rand(size, d_model)
    dec.position_encodings.encodings = rand(n_text_ctx, d_model, scale=0.01)
    for layer in dec.layer:
        self_attention(layer.self_attention)
        cross = layer.attention
        layer_norm(cross.layer_norm)
        linear(cross.linear[0], d_model, d_model)
        linear(cross.linear[1], 2 * d_model, d_model)
        linear(cross.linear[2], d_model, d_model)
        feed_forward(layer.ffn)
    layer_norm(dec.layer_norm)
    dec.projection.weight = dec.embeddings.weight  # tied, like real Whisper

    spec.register_vocabulary([id_to_token[i] for i in range(size)])
    cfg = spec.config
    cfg.suppress_ids = []
    cfg.suppress_ids_begin = [tok.token_to_id("Ġ"), tok.token_to_id("<|endoftext|>")]
    cfg.lang_ids = []
    cfg.alignment_heads = [(layers // 2 + i, h) for i in range(layers - layers // 2)
                           for h in range(heads)]
    spec.validate()
    spec.optimize(quantization=None)
    spec.save(str(out))
    (out / "preprocessor_config.json").write_text(json.dumps({
        "feature_size": n_mels, "sampling_rate": 16000, "hop_length": 160,
        "chunk_length": 30, "n_fft": 400,
    }))


# ---------------------------------------------------------------------------------------- piper


PIPER_TEST_SAMPLE_RATE = 22050


def build_tiny_piper(path: Path) -> Path:
    """A Piper-shaped ONNX voice (~170 KB) plus its `.onnx.json`; one embedding frame per phoneme."""
    return _atomic_build(path, _write_tiny_piper, is_dir=False)


def _write_tiny_piper(out: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    hop = 256
    num_symbols = max(i for ids in DEFAULT_PHONEME_ID_MAP.values() for i in ids) + 1
    rng = np.random.default_rng(SEED)
    emb = numpy_helper.from_array(rng.standard_normal((num_symbols, hop)).astype(np.float32), "emb")
    i0 = numpy_helper.from_array(np.array(0, np.int64), "i0")
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    shape = numpy_helper.from_array(np.array([1, 1, -1], np.int64), "shp")
    nodes = [
        helper.make_node("Gather", ["emb", "input"], ["e"], axis=0),  # [1, N, hop]
        helper.make_node("Gather", ["scales", "i0"], ["noise_scale"], axis=0),
        helper.make_node("Mul", ["e", "noise_scale"], ["e2"]),
        helper.make_node("Tanh", ["e2"], ["e3"]),
        helper.make_node("Reshape", ["e3", "shp"], ["audio"]),  # [1, 1, N * hop]
        # use input_lengths so it stays a real graph input, as in a trained voice
        helper.make_node("Cast", ["input_lengths"], ["lf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["lf"], ["ls"], keepdims=0),
        helper.make_node("Mul", ["ls", "zero"], ["lz"]),
        helper.make_node("Add", ["audio", "lz"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_piper",
        inputs=[
            helper.make_tensor_value_info("input", TensorProto.INT64, [1, "phonemes"]),
            helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
        ],
        outputs=[helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "time"])],
        initializer=[emb, i0, zero, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    config = {
        "audio": {"sample_rate": PIPER_TEST_SAMPLE_RATE},
        "espeak": {"voice": "en-us"},
        "phoneme_type": "espeak",
        "num_symbols": num_symbols,
        "num_speakers": 1,
        "inference": {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8},
        "phoneme_id_map": DEFAULT_PHONEME_ID_MAP,
        "speaker_id_map": {},
        "piper_version": "1.0.0",
    }
    Path(f"{out}.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
