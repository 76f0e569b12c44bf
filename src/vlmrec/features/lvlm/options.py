"""What an LVLM job is asked to do: the pooling and mode names, and the decoding options
(`GenerationOptions`) shared by the transformers and vLLM back-ends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vlmrec.errors import ConfigError

if TYPE_CHECKING:
    import torch

Pooling = Literal["mean", "image", "prompt", "last"]
POOLINGS: tuple[str, ...] = get_args(Pooling)
Mode = Literal["embed", "generate"]
NO_LVLM_HELP = (
    "no LVLM weights are available offline here: pass --model with a local checkpoint folder "
    "(e.g. a downloaded Qwen2-VL, LLaVA or SmolVLM) or a hub id on a machine that can reach a hub. "
    "Offline, use the label+OCR describer instead: `vlmrec extract --extractor describe-ocr` "
    "(it is not an LVLM and says so in its outputs)."
)


class GenerationOptions(BaseModel):
    """How `LVLM.generate` decodes; greedy unless `do_sample`. Unknown keys are rejected.

    Sampling knobs (temperature, top_p, top_k) are errors without `do_sample=True`; when sampling,
    unset ones are passed as their neutral values (1.0, 1.0, off) so that a checkpoint's own
    `generation_config.json` cannot change them unseen. `seed` seeds torch before sampling.
    `cache_implementation` and `compile` change speed, not the decoded text (up to float rounding),
    so they are left out of `decoding()` (the description cache key) but recorded in manifests.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(96, ge=1, description="longest generated answer, in tokens")
    min_new_tokens: int = Field(0, ge=0, description="shortest generated answer, in tokens")
    do_sample: bool = Field(False, description="sample instead of greedy decoding")
    temperature: float | None = Field(None, gt=0, description="sampling temperature (do_sample only)")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling mass (do_sample only)")
    top_k: int | None = Field(None, ge=0, description="sample from the k likeliest tokens (do_sample only)")
    num_beams: int = Field(1, ge=1, description="beam search width (1: no beam search)")
    repetition_penalty: float = Field(1.0, gt=0, description="penalty on repeated tokens (1: none)")
    seed: int = Field(0, description="torch seed set before sampling")
    cache_implementation: Literal["dynamic", "static"] = Field(
        "dynamic", description="KV cache kind (speed only; static allows compile)"
    )
    compile: bool = Field(False, description="torch.compile the decoding step (speed only)")

    SPEED_FIELDS: ClassVar[tuple[str, ...]] = ("cache_implementation", "compile")

    @model_validator(mode="after")
    def _consistent(self) -> GenerationOptions:
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens ({self.min_new_tokens}) > max_new_tokens ({self.max_new_tokens})"
            )
        sampling = [k for k in ("temperature", "top_p", "top_k") if getattr(self, k) is not None]
        if sampling and not self.do_sample:
            raise ValueError(f"{', '.join(sampling)} apply only with do_sample=True (decoding is greedy)")
        if self.compile and self.cache_implementation != "static":
            raise ValueError(
                "compile=True needs cache_implementation='static' (transformers compiles the decoding step "
                "only with a static KV cache)"
            )
        return self

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> GenerationOptions:
        """Validate a plain dict (CLI, YAML); errors name the offending key."""
        try:
            return cls(**options)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'options'}: {err['msg']}" for err in e.errors()
            )
            raise ConfigError(
                f"generation options: {problems} (valid keys: {', '.join(cls.model_fields)})"
            ) from None

    def decoding(self) -> dict[str, Any]:
        """The options that change the decoded text (the key of cached descriptions)."""
        return self.model_dump(exclude=set(self.SPEED_FIELDS))

    def generate_kwargs(self, device: torch.device) -> dict[str, Any]:
        """Keyword arguments for `transformers` `generate` (every decoding choice explicit)."""
        kw: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "num_beams": self.num_beams,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.min_new_tokens:
            kw["min_new_tokens"] = self.min_new_tokens
        if self.do_sample:
            kw.update(
                temperature=self.temperature if self.temperature is not None else 1.0,
                top_p=self.top_p if self.top_p is not None else 1.0,
                top_k=self.top_k or 0,
            )
        if self.cache_implementation == "static":
            kw["cache_implementation"] = "static"
            if self.compile:
                from transformers import CompileConfig

                # Any: transformers declares this private switch `= None` in some releases, a bool
                # in others; an annotation holds in all of them where a `type: ignore` cannot
                compile_config: Any = CompileConfig()
                if device.type == "cpu":  # transformers compiles on accelerators only unless told
                    compile_config._compile_all_devices = True
                kw["compile_config"] = compile_config
            else:  # transformers would otherwise compile on its own whenever the cache is static
                kw["disable_compile"] = True
        return kw
