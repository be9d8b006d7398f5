"""Which shipped model codes an image when the user names none: chosen by how noisy the image looks.

Why: a network fine-tuned further on mild camera noise can win on real photos and lose on very noisy ones
(docs/training.md, "The fifth leg ships as jcd-n128-mild"), and then two models serve better than one. So the
encoder can measure the image's noise (:func:`jcdcodec.noise.estimate.noise_level`, from the image alone) and
code it with the model made for that noise. A manifest entry says where its model takes over: ``"auto":
{"below_noise": 3.0}`` (8-bit levels of the estimate); images at or above every such bound go to the
manifest's default. The stream names the model it was made with, so decoding needs no choice, and naming
weights (``--weights``) turns the choice off. No shipped model has a rule since 2026-12-02: the default then
beat the mild-noise model on mild noise too (docs/models.md), so without a rule nothing is measured and the
default codes every image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ModelUnavailable, WeightsError
from .imageio import Picture
from .manifest import read_manifest

if TYPE_CHECKING:
    from .encoder import Encoded, StreamEncoder

#: What ``--weights`` (and ``jcd eval --weights``) accepts for the automatic choice.
AUTO = "auto"


@dataclass(frozen=True)
class Choice:
    """A model picked for one image, and why."""

    name: str | None  # a shipped model's name; None: the manifest's default
    noise: float | None  # the image's estimated noise std, in 8-bit levels; None: not measured (no rules)
    rule: float | None  # the ``below_noise`` bound that picked it; None: the default

    def describe(self) -> str:
        """Why this model, for the encoder's report line: '' when nothing was measured to choose it."""
        if self.noise is None:
            return ""
        bound = f" < {self.rule:g}" if self.rule is not None else ""
        return f"estimated noise {self.noise:.2f}/255{bound}"


def rules(manifest: dict | None = None) -> list[tuple[float, str]]:
    """(bound, model name) of every shipped model with an ``auto`` rule, lowest bound first."""
    manifest = read_manifest() if manifest is None else manifest
    out = []
    for name, entry in manifest.get("models", {}).items():
        bound = (entry.get("auto") or {}).get("below_noise") if isinstance(entry, dict) else None
        if isinstance(bound, (int, float)) and bound > 0:
            out.append((float(bound), name))
    return sorted(out)


def choose(picture: Picture, manifest: dict | None = None) -> Choice:
    """The model for ``picture``: the one with the lowest bound above its noise, else the default."""
    table = rules(manifest)
    if not table:  # no rule: the default, without measuring
        return Choice(None, None, None)
    from .noise.estimate import noise_level  # here: the noise package imports PyTorch, which encoding need not

    noise = noise_level(picture.rgb)
    for bound, name in table:
        if noise < bound:
            return Choice(name, noise, bound)
    return Choice(None, noise, None)


class AutoCodec:
    """Encodes like :func:`~jcdcodec.encoder.open_encoder`'s codecs, each image with the model :func:`choose` picks.

    A model loads the first time it is chosen (an N=128 model holds about 1 GB while coding), so a batch of
    noisy photos never loads the mild-noise model. ``last`` is the choice of the latest image, ``last_codec``
    the codec that coded it.
    """

    def __init__(self, **codec_options: object) -> None:
        """``codec_options``: what :func:`~jcdcodec.encoder.open_encoder` takes (device, engine, threads, ...)."""
        self.options = codec_options
        device = codec_options.get("device")
        if isinstance(device, str) and device not in ("auto", "cpu"):  # a device that is not there fails here,
            from .codec import resolve_device  # once, not at every image of a batch

            resolve_device(device)
        self.manifest = read_manifest()  # once, not per image: the rules cannot change while it codes
        self._codecs: dict[str | None, StreamEncoder] = {}
        self._unloadable: dict[str | None, str] = {}  # model -> why it did not load
        self.last: Choice | None = None
        self.last_codec: StreamEncoder | None = None

    def codec(self, picture: Picture) -> StreamEncoder:
        """The codec of the model chosen for ``picture`` (loaded once, then kept)."""
        from .encoder import open_encoder

        self.last = choice = choose(picture, self.manifest)
        if choice.name in self._unloadable:  # tried already: its 30 MB are not checked again for every image
            raise ModelUnavailable(self._unloadable[choice.name])
        if choice.name not in self._codecs:
            try:
                self._codecs[choice.name] = open_encoder(choice.name, **self.options)
            except WeightsError as e:
                self._unloadable[choice.name] = str(e)
                raise ModelUnavailable(str(e)) from None
        self.last_codec = self._codecs[choice.name]
        return self.last_codec

    def encode(self, picture: Picture, quality: float) -> Encoded:
        return self.codec(picture).encode(picture, quality)

    def encode_to_size(self, picture: Picture, max_bytes: int) -> Encoded:
        return self.codec(picture).encode_to_size(picture, max_bytes)
