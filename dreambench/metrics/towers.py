"""Building the DINO and CLIP towers only when some number must be computed."""

from __future__ import annotations

import dataclasses

from ..models import Backbone, build_clip, build_dino
from .keys import TowerIds


class Towers(TowerIds):
    """:class:`~.keys.TowerIds` that builds the DINO and CLIP towers when some number must be computed
    (a resume with nothing to do builds none). Built towers get ``weights_id = origin:digest``; ``shared``
    (a dict the caller keeps) lets a worker reuse them across jobs."""

    def __init__(self, *args, shared: dict | None = None):
        super().__init__(*args)
        self.shared, self.built, self._bbs = shared, 0, {}

    def backbone(self, kind: str) -> Backbone:
        if kind not in self._bbs:
            origin, ckey = self.spec(kind)
            bb = self.shared.get((kind, ckey)) if self.shared is not None else None
            if bb is None:
                if kind == "dino":
                    bb = build_dino(self.mprof, self.prof.dino.arch, self.dino_weights)
                else:
                    bb = build_clip(self.mprof, self.prof.clip.arch, self.prof.clip.tag, self.clip_weights)
                self.built += 1
                bb = dataclasses.replace(bb, weights_id=f"{origin}:{self.digest(kind, bb.model)}")
                if self.shared is not None:
                    self.shared[(kind, ckey)] = bb
            self._bbs[kind] = bb
        return self._bbs[kind]

    def build_id(self, kind: str) -> str:
        bb = self.backbone(kind)
        return f"{bb.name}@{bb.weights_id}"
