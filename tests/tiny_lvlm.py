"""Vision-language models built from configs with random weights, with a tokenizer trained here and a
real processor, saved with save_pretrained: the same loading path as a real checkpoint.

The `build_*` functions take the text and vision configs, so the same code builds the tiny test
models (the `build_tiny_*` wrappers, CPU, float32) and real-size checkpoints from published configs
(benchmarks/lvlm_throughput.py, on a GPU in bf16). `TINY_BUILDERS` names the tiny builders that run on
this machine's CPU (Qwen2-VL's processor needs torchvision)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

TEXT_LAYERS = 4  # decoder layers of every tiny model: hidden states 0..4, so 2 is a true middle layer

CORPUS = [
    "USER: ASSISTANT: User: Assistant: Look at this product image. Fill in each blank with keywords.",
    "[Type]: shirt [Color]: red [Wear Location]: upper body [Material]: cotton [Style]: casual",
    "Describe the item in this image in at most 30 words.",
]

TINY_TEXT = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=TEXT_LAYERS,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
)


def _tokenizer(
    special: list[str],
    chat_template: str,
    vocab_size: int = 400,
    corpus: Sequence[str] = CORPUS,
    **special_kw: Any,
):
    """A byte-level BPE trained on `corpus` (no download), wrapped as a transformers fast tokenizer."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(list(corpus), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **special_kw)
    fast.chat_template = chat_template
    return fast


@contextmanager
def _default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _save_random(model_cls, config, directory: Path, seed: int, device: str, dtype: torch.dtype) -> None:
    """Random weights (the model's own initialisation) built directly on `device` in `dtype`."""
    torch.manual_seed(seed)
    with _default_dtype(dtype), torch.device(device):
        model = model_cls(config)
    model.save_pretrained(directory)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def build_llava(
    directory: Path,
    text_config: dict,
    vision_config: dict,
    image_size: int,
    seed: int = 0,
    vocab_size: int = 400,
    corpus: Sequence[str] = CORPUS,
    vision_feature_layer: int = -1,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A LLaVA(-1.5) checkpoint: CLIP vision tower, llama text model, `<image>` placeholder."""
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    chat = (
        "{% for message in messages %}{{ message['role'].upper() }}: {% if message['content'] is string %}"
        "{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n"
        "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}\n{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )
    tok = _tokenizer(
        ["<pad>", "<s>", "</s>", "<image>"],
        chat,
        vocab_size,
        corpus,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    patch = int(vision_config["patch_size"])
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=chat,
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    text = {"model_type": "llama", "vocab_size": len(tok), **text_config}
    text["vocab_size"] = max(text["vocab_size"], len(tok))
    config = LlavaConfig(
        vision_config={"model_type": "clip_vision_model", "image_size": image_size, **vision_config},
        text_config=text,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=vision_feature_layer,
        pad_token_id=tok.pad_token_id,
    )
    _save_random(LlavaForConditionalGeneration, config, directory, seed, device, dtype)
    processor.save_pretrained(directory)
    return directory


def build_tiny_llava(directory: Path, seed: int = 0) -> Path:
    return build_llava(
        directory,
        TINY_TEXT,
        dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, patch_size=14),
        image_size=28,
        seed=seed,
    )


def build_tiny_idefics3(directory: Path, seed: int = 0) -> Path:
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    chat = (
        "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:{% if message['content'] is string %}"
        "{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>"
        "{% elif c['type'] == 'text' %} {{ c['text'] }}{% endif %}{% endfor %}{% endif %}<end_of_utterance>\n"
        "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
    )
    tok = _tokenizer(
        [
            "<pad>",
            "<s>",
            "</s>",
            "<image>",
            "<fake_token_around_image>",
            "<global-img>",
            "<end_of_utterance>",
        ],
        chat,
        bos_token="<s>",
        eos_token="<end_of_utterance>",
        pad_token="<pad>",
        extra_special_tokens={
            "image_token": "<image>",
            "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
        },
    )
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": 32}, max_image_size={"longest_edge": 32}
    )
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tok, image_seq_len=1, chat_template=chat
    )
    config = Idefics3Config(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=16,
        ),
        text_config=dict(model_type="llama", vocab_size=len(tok), pad_token_id=tok.pad_token_id, **TINY_TEXT),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
        pad_token_id=tok.pad_token_id,
    )
    _save_random(Idefics3ForConditionalGeneration, config, directory, seed, "cpu", torch.float32)
    processor.save_pretrained(directory)
    return directory


def build_qwen2vl(
    directory: Path,
    text_config: dict,
    vision_config: dict,
    seed: int = 0,
    vocab_size: int = 400,
    corpus: Sequence[str] = CORPUS,
    min_pixels: int = 56 * 56,
    max_pixels: int = 112 * 112,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A Qwen2-VL checkpoint. Its processor needs torchvision (its video processor) in transformers 5:
    this runs where torchvision imports (e.g. the GPU machines)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    special = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    ]
    chat = (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
        "{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}"
        "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
        "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    tok = _tokenizer(
        special,
        chat,
        vocab_size,
        corpus,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
    )
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels),
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=chat,
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in special}
    text = {"vocab_size": len(tok), **text_config}
    text["vocab_size"] = max(text["vocab_size"], len(tok))
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    _save_random(Qwen2VLForConditionalGeneration, config, directory, seed, device, dtype)
    processor.save_pretrained(directory)
    return directory


def build_tiny_qwen2vl(directory: Path, seed: int = 0) -> Path:
    return build_qwen2vl(
        directory,
        dict(TINY_TEXT, rope_scaling={"type": "mrope", "mrope_section": [2, 1, 1]}),
        dict(
            depth=1,
            embed_dim=32,
            hidden_size=32,
            num_heads=2,
            mlp_ratio=2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            in_channels=3,
        ),
        seed=seed,
    )


TINY_BUILDERS = {"llava": build_tiny_llava, "idefics3": build_tiny_idefics3}
