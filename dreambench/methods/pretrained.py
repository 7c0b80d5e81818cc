"""The unmodified model prompted with the class noun and no identifier ("a dog in the jungle").

The lower reference: what Stable Diffusion makes of the class alone, with no subject information."""

from __future__ import annotations

from pathlib import Path

from ..lazy import LazyModule
from .configs import SamplingConfig
from .interface import GenerationRequest, Method, SubjectData

sampling = LazyModule("dreambench.methods.sampling")  # loads torch: only when generating


class Pretrained(Method):
    name = "pretrained"
    description = "the unmodified model prompted with the class noun (identifier removed); no training"
    Config = SamplingConfig
    trains = False
    uses_photos = False  # the class noun alone: a changed photo changes nothing it makes

    def prompt_identifier(self, identifier: str) -> str:
        return ""

    def train(self, data: SubjectData, workdir: Path) -> None:
        return None

    def generate(self, data: SubjectData, requests: list[GenerationRequest]) -> list:
        return sampling.sample_requests(self.components, requests, self.config, self.device)
