"""A training-free baseline as a dreambench plug-in: the unmodified model draws the scene from the
identifier-free prompt ("a dog in the jungle"), and one real photo of the subject is pasted into its
centre. It is the smallest method that uses both halves of the API: the subject's photos
(``SubjectData.images``) and the shared SD sampler (``sample_requests``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dreambench.images import load_rgb
from dreambench.methods.base import GenerationRequest, Method, SubjectData
from dreambench.methods.sampling import SamplingConfig, sample_requests


@dataclass
class PasteConfig(SamplingConfig):
    scale: float = field(default=0.5, metadata={"gt": 0, "max": 1, "help": "pasted photo's side as a fraction of the image side"})


class PasteBaseline(Method):
    name = "example-paste"
    description = "example plug-in: pretrained scene from the class prompt, a real photo pasted in its centre"
    Config = PasteConfig
    trains = False

    def prompt_identifier(self, identifier: str) -> str:
        return ""  # the scene comes from the class prompt alone

    def train(self, data: SubjectData, workdir: Path) -> None:
        return None

    def generate(self, data: SubjectData, requests: list[GenerationRequest]) -> list:
        scenes = sample_requests(self.components, requests, self.config, self.device)
        out = []
        for req, scene in zip(requests, scenes):
            photo = load_rgb(data.images[req.seed % len(data.images)])
            side = max(1, int(min(scene.size) * self.config.scale))
            photo = photo.resize((side, side))
            scene = scene.copy()
            scene.paste(photo, ((scene.width - side) // 2, (scene.height - side) // 2))
            out.append(scene)
        return out
