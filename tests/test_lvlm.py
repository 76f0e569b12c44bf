"""LVLM embeddings and descriptions through tiny random-weight models of two architectures
(LLaVA, Idefics3), saved with save_pretrained and loaded through the same code path as a real
checkpoint. No weights are downloaded."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vlmrec.errors import ConfigError, ModelError
from vlmrec.features.encoders.attributes import AttributeEncoder, normalise_keyword
from vlmrec.features.lvlm.model import (
    LVLM,
    MAX_BATCH,
    BatchChoice,
    GenerationOptions,
    choose_batch_size,
    estimate_item_bytes,
    length_order,
    pool,
    select_layer,
)
from vlmrec.features.lvlm.prompts import BUILTIN, load_template, parse_fitb

from .tiny_lvlm import TEXT_LAYERS, TINY_BUILDERS, build_tiny_qwen2vl

ARCHS = TINY_BUILDERS


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    return {name: build(tmp_path_factory.mktemp(name)) for name, build in ARCHS.items()}


@pytest.fixture(scope="session")
def lvlms(tiny_models):
    return {name: LVLM(str(path), device="cpu") for name, path in tiny_models.items()}


@pytest.fixture(scope="session")
def photos():
    from skimage import data

    coffee = Image.fromarray(data.coffee())
    astronaut = Image.fromarray(data.astronaut())
    return [coffee, astronaut]


@pytest.mark.parametrize("arch", list(ARCHS))
def test_pooling_matches_manual_computation(lvlms, photos, arch):
    lvlm = lvlms[arch]
    prompts = [BUILTIN["clothing"].render(), BUILTIN["free"].render()]
    batch = lvlm.inputs(photos, prompts)
    with torch.no_grad():
        hs = lvlm.model(**batch, output_hidden_states=True).hidden_states
    ids, att = batch["input_ids"], batch["attention_mask"]
    last = hs[-1].float()
    img = (ids == lvlm.image_token_id) & att.bool()
    for b in range(2):
        assert img[b].any(), "image placeholder tokens present"
    for pooling in ("mean", "image", "prompt", "last"):
        got = lvlm.embed(photos, prompts, layer=-1, pooling=pooling)
        assert got.shape == (2, lvlm.model.config.get_text_config().hidden_size) and got.dtype == np.float32
        for b in range(2):
            a = att[b].bool()
            if pooling == "mean":
                ref = last[b][a].mean(0)
            elif pooling == "image":
                ref = last[b][img[b]].mean(0)
            elif pooling == "prompt":
                ref = last[b][a & ~img[b]].mean(0)
            else:
                ref = last[b][torch.nonzero(a)[-1, 0]]
            assert np.allclose(got[b], ref.numpy(), atol=1e-5), (arch, pooling)
    # layer choices
    mean2 = lvlm.embed(photos, prompts, layer="mean_last_2", pooling="mean")
    ref = ((hs[-1] + hs[-2]) / 2).float()
    a = att[0].bool()
    assert np.allclose(mean2[0], ref[0][a].mean(0).numpy(), atol=1e-5)
    first = lvlm.embed(photos, prompts, layer=0, pooling="last")
    assert not np.allclose(first, lvlm.embed(photos, prompts, layer=-1, pooling="last"))
    # deterministic
    assert np.array_equal(lvlm.embed(photos, prompts), lvlm.embed(photos, prompts))


@pytest.mark.parametrize("arch", list(ARCHS))
def test_generation_is_greedy_and_deterministic(lvlms, photos, arch):
    a = lvlms[arch].generate(photos, [BUILTIN["free"].render()] * 2, max_new_tokens=6)
    b = lvlms[arch].generate(photos, [BUILTIN["free"].render()] * 2, max_new_tokens=6)
    assert a == b and len(a) == 2 and all(isinstance(t, str) for t in a)


def test_qwen2vl_where_torchvision_imports(tmp_path, photos):
    """Qwen2-VL's processor requires torchvision in transformers 5 (not importable beside the CPU
    torch wheel here); the GPU machines have it, and this test runs there."""
    pytest.importorskip("torchvision")
    lvlm = LVLM(str(build_tiny_qwen2vl(tmp_path / "qwen")), device="cpu")
    prompts = [BUILTIN["baby"].render()] * 2
    batch = lvlm.inputs(photos, prompts)
    with torch.no_grad():
        last = lvlm.model(**batch, output_hidden_states=True).hidden_states[-1].float()
    img = (batch["input_ids"] == lvlm.image_token_id) & batch["attention_mask"].bool()
    got = lvlm.embed(photos, prompts, pooling="image")
    assert np.allclose(got[0], last[0][img[0]].mean(0).numpy(), atol=1e-5)
    greedy = lvlm.generate(photos, prompts, max_new_tokens=4)
    assert len(greedy) == 2
    # the hooks find Qwen2-VL's decoder too, and a middle layer equals transformers' hidden state
    assert lvlm.layer_capture == "forward hooks"
    with torch.no_grad():
        middle = lvlm.model(**batch, output_hidden_states=True).hidden_states[TEXT_LAYERS // 2].float()
    got = lvlm.embed(photos, prompts, layer=TEXT_LAYERS // 2, pooling="mean", batch_size=2)
    ref = pool(middle, batch["input_ids"], batch["attention_mask"], "mean", lvlm.image_token_id)
    assert np.allclose(got, ref.numpy(), atol=1e-5)
    static = GenerationOptions(max_new_tokens=4, cache_implementation="static")
    assert lvlm.generate(photos, prompts, options=static) == greedy


def test_layer_and_pooling_errors():
    hs = tuple(torch.zeros(1, 3, 4) for _ in range(3))
    with pytest.raises(ModelError, match="3 hidden-state layers"):
        select_layer(hs, 5)
    with pytest.raises(ModelError, match="image token"):
        pool(hs[0], torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long), "image", None)


def test_vllm_backend_absent_is_explained(tiny_models):
    try:
        import vllm  # noqa: F401

        pytest.skip("vLLM is installed here; the GPU check covers it")
    except ImportError:
        pass
    from vlmrec.features.lvlm.extractors import build_lvlm_describe

    with pytest.raises(ModelError, match="pip install vllm"):
        build_lvlm_describe(str(tiny_models["llava"]), "/tmp/x", prompt="free", backend="vllm")


def test_no_model_explains_offline_alternative():
    with pytest.raises(ModelError, match="describe-ocr"):
        LVLM(None)


SLOTS = BUILTIN["clothing"].slots


@pytest.mark.parametrize(
    "answer,expected,missing",
    [
        (
            "[Type]: T-shirt\n[Color]: red\n[Wear Location]: upper body\n[Material]: cotton\n[Style]: casual",
            {"Type": "T-shirt", "Color": "red", "Material": "cotton", "Style": "casual"},
            [],
        ),
        (
            "Sure! Here it is:\n[Type]: dress\n[Color]: navy blue.\nHope this helps.",
            {"Type": "dress", "Color": "navy blue"},
            ["Wear Location", "Material", "Style"],
        ),
        (
            "Type: boots\nColor: brown\nWear Location: feet\nMaterial: leather\nStyle: rugged",
            {"Type": "boots", "Material": "leather", "Wear Location": "feet"},
            [],
        ),
        (
            "[Style]: formal [Type]: blazer [Material]: wool [Color]: ... [Wear Location]: torso",
            {"Style": "formal", "Type": "blazer", "Wear Location": "torso"},
            ["Color"],
        ),
        ("I cannot see the item clearly.", {}, list(SLOTS)),
    ],
)
def test_fitb_parsing(answer, expected, missing):
    parsed = parse_fitb(answer, SLOTS)
    for k, v in expected.items():
        assert parsed.values[k] == v
    assert parsed.missing == missing


def test_user_template_yaml(tmp_path):
    p = tmp_path / "toys.yaml"
    p.write_text("name: toys\nkind: fitb\nslots: [Toy Type, Age Range]\n")
    t = load_template(str(p))
    assert t.slots == ("Toy Type", "Age Range") and "[Toy Type]" in t.text
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: fitb\ntext: 'Describe [A]'\nslots: [A, B]\n")
    with pytest.raises(ConfigError, match=r"\['B'\]"):
        load_template(str(bad))
    with pytest.raises(ConfigError, match="not a built-in"):
        load_template("nope")
    assert "{title}" in BUILTIN["vlm4rec"].text and BUILTIN["vlm4rec"].render("Red mug").count("Red mug") == 1
    assert BUILTIN["control"].kind == "control"
    assert all(len(BUILTIN[d].slots) == 5 for d in ("baby", "pets", "clothing", "recipes", "movies"))


def test_attribute_one_hot_top_k_other_and_clustering():
    answers = [
        {"Type": "T-shirts", "Color": "Red"},
        {"Type": "t-shirt", "Color": "red"},
        {"Type": "tee", "Color": "blue"},
        {"Type": "Dresses", "Color": "green"},
        {"Type": "hat", "Color": "red"},
        {"Type": "dress"},
    ]
    assert normalise_keyword("The T-Shirts, cotton") == "t-shirt"

    def embed(words):  # 'tee' is a near-duplicate of 't-shirt'; everything else is orthogonal
        vecs = np.eye(len(words))
        for i, w in enumerate(words):
            if w == "tee":
                vecs[i] = vecs[words.index("t-shirt")]
        return vecs

    enc = AttributeEncoder(["Type", "Color"], top=2, embed=embed).fit(answers)
    assert enc.vocab["Type"] == ["t-shirt", "dress"]
    assert enc.columns == [
        "Type=t-shirt",
        "Type=dress",
        "Type=Other",
        "Color=red",
        "Color=blue",
        "Color=Other",
    ]
    x = enc.transform(answers)
    assert x.shape == (6, 6)
    assert x[2, 0] == 1  # tee merged into t-shirt
    assert x[4, 2] == 1  # hat -> Type=Other
    assert x[3, 5] == 1  # green -> Color=Other
    assert x[5, 3:].sum() == 0  # missing colour: no column set
    assert (x.sum(1) == [2, 2, 2, 2, 2, 1]).all()
    # the paper's size: 5 slots x (50 + Other) = 255
    many = [{s: f"v{i}" for s in SLOTS} for i in range(60)]
    assert len(AttributeEncoder(SLOTS, top=50).fit(many).columns) == 255


def test_describe_catalogue_caches_resumes_and_records_parse_failures(tiny_models, tmp_path, monkeypatch):
    from vlmrec.data import prepare_dataset
    from vlmrec.features.lvlm.extractors import describe_catalogue
    from vlmrec.models import create_model

    ds = prepare_dataset(
        "planted", out=tmp_path / "ds", planted_options={"n_users": 20, "n_items": 10, "image_size": 48}
    )
    sets = describe_catalogue(
        ds,
        str(tiny_models["llava"]),
        "clothing",
        tmp_path / "d",
        batch_size=4,
        max_new_tokens=8,
        device="cpu",
    )
    assert set(sets) == {"text", "attributes"}
    assert sets["text"].vectors.shape == (10, 384)
    lines = (tmp_path / "d" / "descriptions.jsonl").read_text().splitlines()
    assert len(lines) == 10
    rec = json.loads(lines[0])
    assert rec["source"].startswith("LVLM ") and "missing_slots" in rec
    # random weights answer gibberish: every item's FITB parse failure is recorded, none is fatal
    att = sets["attributes"]
    assert len(att.manifest["failed"]) == 10 and "missing slot" in att.manifest["failed"][0]["reason"]
    assert att.manifest["prompt_name"] == "clothing" and att.dim == 5  # 5 empty slots: only "Other" columns
    for fs in sets.values():  # generation options and batch size are recorded
        assert (
            fs.manifest["generation"]["max_new_tokens"] == 8
            and fs.manifest["generation"]["do_sample"] is False
        )
        assert fs.manifest["batch_size"] == 4 and fs.manifest["batch_size_source"] == "explicit"
    # resume: everything is cached, so a second run must not generate again
    monkeypatch.setattr(
        LVLM, "generate", lambda *a, **k: (_ for _ in ()).throw(AssertionError("regenerated"))
    )
    again = describe_catalogue(
        ds,
        str(tiny_models["llava"]),
        "clothing",
        tmp_path / "d2",
        batch_size=4,
        max_new_tokens=8,
        device="cpu",
        cache=tmp_path / "d" / "descriptions.jsonl",
    )
    assert again["text"].vectors.shape == (10, 384)
    # and the LVLM FeatureSets feed a recommender like any other
    m = create_model("profilematch").fit(ds, {"lvlm": sets["text"]})
    assert m.score(np.arange(3)).shape == (3, 10)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_cli_extract_lvlm_embed(tiny_models, tmp_path, arch):
    from typer.testing import CliRunner

    from vlmrec.cli import app
    from vlmrec.data import prepare_dataset
    from vlmrec.features.featureset import FeatureSet

    ds = prepare_dataset(
        "planted", out=tmp_path / "ds", planted_options={"n_users": 20, "n_items": 8, "image_size": 48}
    )
    r = CliRunner().invoke(
        app,
        [
            "extract",
            "--dataset",
            str(tmp_path / "ds"),
            "--extractor",
            "lvlm-embed",
            "--model",
            str(tiny_models[arch]),
            "--prompt",
            "clothing",
            "--pooling",
            "image",
            "--layer",
            "-2",
            "--out",
            str(tmp_path / "emb"),
            "--batch-size",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    fs = FeatureSet.load(tmp_path / "emb", ds)
    assert fs.vectors.shape == (8, 32) and np.isfinite(fs.vectors).all()
    m = fs.manifest
    assert (
        m["pooling"] == "image"
        and m["layer"] == -2
        and m["prompt_name"] == "clothing"
        and "[Material]" in m["prompt"]
    )
    assert m["batch_size"] == 3 and m["batch_size_source"] == "explicit"  # --batch-size is honoured
    r = CliRunner().invoke(app, ["describe", "--dataset", str(tmp_path / "ds"), "--prompt", "clothing"])
    assert r.exit_code == 2 and "describe-ocr" in r.output


# ---- layer capture, batching, generation options (issue 16) ---------------------------------

TITLES = [
    "Mug",
    "Red cotton T-shirt for toddlers, short sleeves",
    "Hat",
    "Soft wool blanket with a zip, large",
]


def _items(photos):
    """Four items whose prompts differ in length (the vlm4rec template shows the title)."""
    images = [photos[i % 2] for i in range(len(TITLES))]
    return images, [BUILTIN["vlm4rec"].render(t) for t in TITLES]


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("layer", [0, TEXT_LAYERS // 2, -1, "mean_last_2"])
def test_hooked_layer_equals_output_hidden_states(lvlms, photos, arch, layer):
    """Only the requested layer is captured (hooks), and it equals transformers' hidden state."""
    lvlm = lvlms[arch]
    images, prompts = _items(photos)
    batch = lvlm.inputs(images, prompts)
    with torch.no_grad():
        hs = lvlm.model(**batch, output_hidden_states=True).hidden_states
    assert len(hs) == TEXT_LAYERS + 1 == lvlm.num_hidden_states
    ref_hidden = select_layer(hs, layer).float()
    for pooling in ("mean", "image", "prompt", "last"):
        ref = pool(ref_hidden, batch["input_ids"], batch["attention_mask"], pooling, lvlm.image_token_id)
        got = lvlm.embed(images, prompts, layer=layer, pooling=pooling, batch_size=len(images))
        assert np.allclose(got, ref.numpy(), atol=1e-5), (arch, layer, pooling)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_embed_runs_only_up_to_the_requested_layer(lvlms, photos, arch):
    lvlm = lvlms[arch]
    assert lvlm.layer_capture == "forward hooks"
    calls: dict[str, int] = {"last_layer": 0, "head": 0}
    head = lvlm.model.get_output_embeddings()
    h1 = lvlm.decoder.layers[-1].register_forward_hook(lambda *a: calls.__setitem__("last_layer", 1))
    h2 = head.register_forward_hook(lambda *a: calls.__setitem__("head", 1))
    try:
        lvlm.embed(photos, ["a", "b"], layer=TEXT_LAYERS // 2)
        assert calls == {"last_layer": 0, "head": 0}  # later layers and the LM head never ran
        lvlm.embed(photos, ["a", "b"], layer=-1)
        assert calls == {"last_layer": 1, "head": 0}  # no logits for embeddings
    finally:
        h1.remove()
        h2.remove()
    with pytest.raises(ModelError, match="mean_last_N"):
        lvlm.embed(photos, ["a", "b"], layer="mean_last_x")


@pytest.mark.parametrize("arch", list(ARCHS))
def test_prompt_lengths_are_the_processed_lengths(lvlms, photos, arch):
    lvlm = lvlms[arch]
    images, prompts = _items(photos)
    images[1] = images[1].resize((40, 90))
    expected = [lvlm.inputs([im], [p])["input_ids"].shape[1] for im, p in zip(images, prompts)]
    assert lvlm.prompt_lengths(images, prompts) == expected
    assert len(set(expected)) > 1


def test_length_order_longest_first_stable():
    assert length_order([3, 9, 3, 5, 9]) == [1, 4, 3, 0, 2]
    assert length_order([]) == []


@pytest.mark.parametrize("arch", list(ARCHS))
def test_length_sorted_batches_restore_the_input_order(lvlms, photos, arch, monkeypatch):
    lvlm = lvlms[arch]
    images, prompts = _items(photos)
    alone = np.concatenate([lvlm.embed([im], [p], pooling="last") for im, p in zip(images, prompts)])
    seen: list[list[str]] = []
    original = lvlm._embed_batch

    def spy(ims, ps, indices, pooling):
        seen.append(list(ps))
        return original(ims, ps, indices, pooling)

    monkeypatch.setattr(lvlm, "_embed_batch", spy)
    batched = lvlm.embed(images, prompts, pooling="last", batch_size=2)
    monkeypatch.undo()
    assert np.allclose(batched, alone, atol=1e-5)  # original order restored
    lengths = dict(zip(prompts, lvlm.prompt_lengths(images, prompts)))
    flat = [lengths[p] for b in seen for p in b]
    assert [len(b) for b in seen] == [2, 2] and flat == sorted(flat, reverse=True)  # longest first
    one_by_one = [lvlm.generate([im], [p], max_new_tokens=5)[0] for im, p in zip(images, prompts)]
    assert lvlm.generate(images, prompts, max_new_tokens=5, batch_size=3) == one_by_one


def test_generation_options_are_typed_and_strict():
    with pytest.raises(ConfigError, match="max_new_token"):
        GenerationOptions.from_options({"max_new_token": 5})  # a typo is an error, naming the key
    with pytest.raises(ConfigError, match="do_sample=True"):
        GenerationOptions.from_options({"temperature": 0.7})
    with pytest.raises(ConfigError, match="min_new_tokens"):
        GenerationOptions.from_options({"min_new_tokens": 9, "max_new_tokens": 4})
    with pytest.raises(ConfigError, match="static"):
        GenerationOptions.from_options({"compile": True})
    with pytest.raises(ConfigError, match="num_beams"):
        GenerationOptions.from_options({"num_beams": 0})
    greedy = GenerationOptions().generate_kwargs(torch.device("cpu"))
    assert greedy == {"max_new_tokens": 96, "do_sample": False, "num_beams": 1, "repetition_penalty": 1.0}
    sampled = GenerationOptions(do_sample=True, top_p=0.9, min_new_tokens=2).generate_kwargs(
        torch.device("cpu")
    )
    assert sampled["temperature"] == 1.0 and sampled["top_p"] == 0.9 and sampled["top_k"] == 0
    assert sampled["min_new_tokens"] == 2
    static = GenerationOptions(cache_implementation="static").generate_kwargs(torch.device("cpu"))
    assert static["cache_implementation"] == "static" and static["disable_compile"] is True
    opts = GenerationOptions(cache_implementation="static", compile=True)
    assert "cache_implementation" not in opts.decoding() and "compile" not in opts.decoding()


@pytest.mark.parametrize("arch", list(ARCHS))
def test_generation_options_reach_generate(lvlms, photos, arch, monkeypatch):
    lvlm = lvlms[arch]
    prompts = [BUILTIN["free"].render()] * 2
    calls: list[tuple[dict, int]] = []
    original = lvlm.model.generate

    def spy(**kwargs):
        out = original(**kwargs)
        calls.append(
            (
                {k: v for k, v in kwargs.items() if not torch.is_tensor(v)},
                out.shape[1] - kwargs["input_ids"].shape[1],
            )
        )
        return out

    monkeypatch.setattr(lvlm.model, "generate", spy)
    forced = GenerationOptions(min_new_tokens=6, max_new_tokens=6, repetition_penalty=1.3, num_beams=2)
    assert len(lvlm.generate(photos, prompts, options=forced)) == 2
    kwargs, new_tokens = calls[-1]
    assert new_tokens == 6 and kwargs["num_beams"] == 2 and kwargs["repetition_penalty"] == 1.3
    assert kwargs["min_new_tokens"] == 6 and kwargs["do_sample"] is False
    lvlm.generate(photos, prompts, max_new_tokens=3)
    assert calls[-1][0]["max_new_tokens"] == 3 and calls[-1][1] <= 3
    sampled = GenerationOptions(do_sample=True, temperature=1.5, seed=3, max_new_tokens=6)
    a = lvlm.generate(photos, prompts, options=sampled)
    assert calls[-1][0]["temperature"] == 1.5 and calls[-1][0]["do_sample"] is True
    assert a == lvlm.generate(photos, prompts, options=sampled)  # seeded


@pytest.mark.parametrize("arch", list(ARCHS))
def test_static_kv_cache_accepted_on_cpu(lvlms, photos, arch):
    lvlm = lvlms[arch]
    images, prompts = _items(photos)
    dynamic = lvlm.generate(images, prompts, max_new_tokens=5, batch_size=3)
    static = GenerationOptions(max_new_tokens=5, cache_implementation="static")
    assert lvlm.generate(images, prompts, options=static, batch_size=3) == dynamic


def test_compiled_decoding_accepted_on_cpu(lvlms, photos):
    """transformers compiles the decoding step (static cache) on CPU when told; ~1 min of inductor."""
    lvlm = lvlms["llava"]
    images, prompts = _items(photos)
    dynamic = lvlm.generate(images[:2], prompts[:2], max_new_tokens=4, batch_size=2)
    opts = GenerationOptions(max_new_tokens=4, cache_implementation="static", compile=True)
    try:
        compiled = lvlm.generate(images[:2], prompts[:2], options=opts, batch_size=2)
    except Exception as e:  # an environment without a working C++ toolchain for inductor
        if "inductor" in type(e).__module__ or "CppCompileError" in type(e).__name__:
            pytest.skip(f"torch.compile cannot build CPU kernels here: {type(e).__name__}")
        raise
    assert compiled == dynamic
    assert hasattr(lvlm.model, "_compiled_call")  # transformers really compiled the forward


def test_batch_size_explicit_cpu_default_and_from_free_memory(lvlms, monkeypatch):
    lvlm = lvlms["llava"]
    prompt = BUILTIN["clothing"].render()
    assert lvlm.resolve_batch_size(5, prompt, "embed") == BatchChoice(5, "explicit")
    assert lvlm.resolve_batch_size(None, prompt, "generate") == BatchChoice(8, "cpu-default")
    with pytest.raises(ConfigError, match="batch_size"):
        lvlm.resolve_batch_size(0, prompt, "embed")
    item, tokens, image_tokens = lvlm.item_memory(prompt, "generate")
    assert tokens == lvlm.inputs([photos_like()], [prompt])["input_ids"].shape[1] and image_tokens == 4
    monkeypatch.setattr(lvlm, "free_memory", lambda: 100 * item)
    auto = lvlm.resolve_batch_size(None, prompt, "generate")
    assert auto.source == "auto" and auto.size == 64 and auto.item_bytes == item  # 80 fit -> 64
    assert auto.manifest()["batch_size"] == 64 and "batch_item_mib_estimate" in auto.manifest()
    monkeypatch.setattr(lvlm, "free_memory", lambda: 10**15)
    assert lvlm.resolve_batch_size(None, prompt, "embed").size == MAX_BATCH
    assert lvlm.resolve_batch_size(7, prompt, "embed").size == 7  # explicit always wins


def photos_like():
    from PIL import Image as PILImage

    return PILImage.new("RGB", (448, 448), (128, 128, 128))


def test_choose_batch_size_and_item_estimate():
    assert choose_batch_size(free_bytes=100, item_bytes=1) == 64  # 80 fit: power of two below
    assert choose_batch_size(free_bytes=10**12, item_bytes=1) == 256  # clamped
    assert choose_batch_size(free_bytes=1, item_bytes=10**9) == 1
    assert choose_batch_size(free_bytes=125, item_bytes=1, headroom=1.0) == 96  # 1.5 x 64 is on the ladder
    from transformers import LlavaConfig

    llava7b = LlavaConfig(
        text_config={
            "model_type": "llama",
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "vocab_size": 32064,
        },
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_attention_heads": 16,
        },
    )
    opts = GenerationOptions(max_new_tokens=64)
    gen = estimate_item_bytes(llava7b, 640, 576, "generate", opts)
    kv = 2 * 32 * 32 * 128 * (640 + 64) * 2
    assert kv < gen < 2 * kv  # the KV cache dominates generation
    emb = estimate_item_bytes(llava7b, 640, 576, "embed")
    assert emb < gen and estimate_item_bytes(llava7b, 640, 576, "generate", opts.model_copy()) == gen
    beams = estimate_item_bytes(
        llava7b, 640, 576, "generate", GenerationOptions(max_new_tokens=64, num_beams=2)
    )
    assert beams > 1.9 * gen


def test_oom_halves_an_automatic_batch_and_not_an_explicit_one(lvlms):
    lvlm = lvlms["llava"]
    sizes: list[int] = []

    def run(idx):
        sizes.append(len(idx))
        if len(idx) > 2:
            raise torch.cuda.OutOfMemoryError("simulated")
        return [i * 10 for i in idx]

    lengths = [5, 1, 4, 2, 3]
    try:
        assert lvlm._batches(lengths, BatchChoice(4, "auto"), "embed", run) == [0, 10, 20, 30, 40]
        assert sizes[0] == 4 and max(sizes[1:]) == 2 and lvlm._oom_cap["embed"] == 2
        with pytest.raises(ModelError, match="--batch-size"):
            lvlm._batches(lengths, BatchChoice(4, "explicit"), "generate", run)
    finally:
        lvlm._oom_cap.clear()


class FakeTextEncoder:
    """Stands in for the sentence encoder where only manifests are checked."""

    def describe(self) -> dict:
        return {"model": "fake", "model_path": None, "preprocessing": "none"}


def test_factories_honour_batch_size_and_record_options(tiny_models, tmp_path):
    from vlmrec.features.registry import build_extractor

    model = str(tiny_models["llava"])
    emb = build_extractor("lvlm-embed", tmp_path / "e", model=model, batch_size=3, fields=None, items=None)
    assert emb.batch_size == 3 and emb.manifest()["batch_size"] == 3
    assert (
        emb.manifest()["batch_size_source"] == "explicit"
        and emb.manifest()["layer_capture"] == "forward hooks"
    )
    auto = build_extractor("lvlm-embed", tmp_path / "e", model=model, batch_size=0, device="cpu")
    assert auto.manifest()["batch_size_source"] == "cpu-default"
    desc = build_extractor(
        "lvlm-describe",
        tmp_path / "d",
        model=model,
        batch_size=5,
        max_new_tokens=7,
        num_beams=2,
        text_encoder=FakeTextEncoder(),
    )
    m = desc.manifest()
    assert (
        m["batch_size"] == 5 and m["generation"]["max_new_tokens"] == 7 and m["generation"]["num_beams"] == 2
    )
    assert m["generation"]["do_sample"] is False and desc.describer.config["num_beams"] == 2
    assert desc.batch_size == 20  # describer groups: 4 batches per cache write
    with pytest.raises(ConfigError, match="max_new_token"):
        build_extractor("lvlm-describe", tmp_path / "d", model=model, max_new_token=7)
    with pytest.raises(ConfigError, match="generation options apply"):
        build_extractor("lvlm-embed", tmp_path / "e", model=model, temperature=0.5)
    with pytest.raises(ConfigError, match="lvlm-embed only"):
        build_extractor(
            "lvlm-describe", tmp_path / "d", model=model, pooling="last", text_encoder=FakeTextEncoder()
        )
    with pytest.raises(ConfigError, match="--fields"):
        build_extractor("lvlm-embed", tmp_path / "e", model=model, fields=["title"])
