"""A training-free baseline as a dreambench plug-in: the unmodified model draws the scene from the
identifier-free prompt ("a dog in the jungle"), and one real photo of the subject is pasted into its
centre. It is the smallest method that uses both halves of the API: the subject's photos
(``SubjectData.images``) and the shared SD sampler (``sample_requests``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Only dreambench.methods.api: the names a plug-in may rely on (docs/methods.md). The light names are
# imported here; the sampler, which loads torch, is reached as api.sample_requests when generating, so
# planning a run (which reads Config and trains) does not import torch.
from dreambench.methods import api
from dreambench.methods.api import GenerationRequest, Method, SamplingConfig, SubjectData, load_rgb


@dataclass
class PasteConfig(SamplingConfig):
    scale: float = field(default=0.5, metadata={"gt": 0, "max": 1, "help": "pasted photo's side as a fraction of the image side"})


class PasteBaseline(Method):
    name = "example-paste"  # must equal the entry-point name in pyproject.toml
    description = "example plug-in: pretrained scene from the class prompt, a real photo pasted in its centre"
    Config = PasteConfig
    trains = False

    def prompt_identifier(self, identifier: str) -> str:
        return ""  # the scene comes from the class prompt alone

    def train(self, data: SubjectData, workdir: Path) -> None:
        return None

    def generate(self, data: SubjectData, requests: list[GenerationRequest]) -> list:
        # Sampling through the shared helper keeps the protocol's seeds, sampler and batching; the images
        # are then edited as PIL images. components is only read here, so there is nothing to undo.
        scenes = api.sample_requests(self.components, requests, self.config, self.device)
        out = []
        for req, scene in zip(requests, scenes):
            photo = load_rgb(data.images[req.seed % len(data.images)])
            side = max(1, int(min(scene.size) * self.config.scale))
            photo = photo.resize((side, side))
            scene = scene.copy()
            scene.paste(photo, ((scene.width - side) // 2, (scene.height - side) // 2))
            out.append(scene)
        return out
