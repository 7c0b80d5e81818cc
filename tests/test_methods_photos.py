"""Subject photos decoded once per job, at the resolution needed (issue 15.3), against the old path on the
real DreamBooth photos; the change is versioned in the subject job ids."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from dreambench import photos
from dreambench.engine.plan import MethodRun, RunSpec, build_plan
from dreambench.engine.subject_job import SubjectJob, prepare_subject_data
from dreambench.images import ImageWarning, list_images, load_rgb
from dreambench.methods.training import load_pixels
from dreambench.protocol import load_protocol

RES = 512  # sd15's training resolution: the 1280-2048 px photos are reduced 2x-4x by DCT scaling


def _old_pixels(path, resolution: int) -> torch.Tensor:
    """What training used before: a full decode, a float bicubic resize of the short side, a centre crop."""
    t = TF.pil_to_tensor(load_rgb(path)).float() / 255.0
    t = TF.resize(t, resolution, interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    return TF.center_crop(t, [resolution, resolution]).clamp(0, 1) * 2 - 1


@pytest.fixture(scope="module")
def sample(dataset_dir):
    """Four JPEG and four multi-picture (MPO) photos spread over the subjects, 780 to 2048 px."""
    every = [p for f in sorted(x for x in dataset_dir.iterdir() if x.is_dir()) for p in list_images(f)]
    by_format: dict[str, list] = {}
    for p in every:
        by_format.setdefault(Image.open(p).format, []).append(p)
    return [p for fmt in ("JPEG", "MPO") for p in by_format[fmt][::len(by_format[fmt]) // 4][:4]]


def test_new_pixels_match_the_old_path(sample):
    """Not within 1 level (hence the versioned ids below), but close: the same framing and filter, and the
    mean difference a fraction of one level."""
    assert {Image.open(p).format for p in sample} == {"JPEG", "MPO"}
    new = load_pixels(sample, RES)
    old = torch.stack([_old_pixels(p, RES) for p in sample])
    assert new.shape == old.shape == (len(sample), 3, RES, RES)
    def levels(x):
        return ((x + 1) * 127.5).round()

    diff = (levels(new) - levels(old)).abs()  # on all 158 photos: mean 0.25, 2.8% over 1 level, max 15
    assert diff.mean() < 0.5, diff.mean()
    assert (diff > 1).float().mean() < 0.05
    assert diff.max() <= 16
    assert new.min() >= -1 and new.max() <= 1


def test_draft_reduces_and_the_header_gives_the_size(sample):
    big = next(p for p in sample if min(Image.open(p).size) >= 4 * RES)
    full = Image.open(big).size
    ph = photos.decode_photo(big, RES)
    assert ph.size == full and ph.short_side == min(full)  # the check reads the original size
    assert photos.DRAFT_MARGIN * RES <= min(ph.image.size) < min(full)
    assert photos.decode_photo(big).image.size == full  # no size asked: full decode


def test_exif_rotation_swaps_the_header_size(tmp_path):
    im = Image.new("RGB", (300, 200), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    im.save(tmp_path / "r.jpg", exif=exif)
    with pytest.warns(ImageWarning, match="EXIF orientation 6"):
        ph = photos.decode_photo(tmp_path / "r.jpg", 64)
    assert ph.size == (200, 300) and ph.image.size[0] < ph.image.size[1]


def test_each_photo_of_a_job_is_decoded_once(dataset_dir, monkeypatch):
    calls = []
    real = photos.decode_photo
    monkeypatch.setattr(photos, "decode_photo", lambda p, s=None: calls.append(p) or real(p, s))
    job = SubjectJob("dreambooth", "db", subject="dog", num_inputs=3)
    data = prepare_subject_data(job, load_protocol("dreambooth"), dataset_dir, resolution=64)
    everything = list_images(dataset_dir / "dog")
    assert sorted(calls) == everything  # the check decodes every photo once
    pixels = load_pixels(data.images, 64)  # training takes the chosen ones from the check
    assert sorted(calls) == everything and pixels.shape == (3, 3, 64, 64)
    load_pixels(data.images, 64)  # a second read (no hand-off left) decodes again: nothing is cached for good
    assert len(calls) == len(everything) + 3


def test_photo_decoding_is_part_of_trained_job_ids(monkeypatch):
    proto = load_protocol("dreambooth")
    spec = RunSpec(methods=[MethodRun("dreambooth", "dreambooth"), MethodRun("pretrained", "pretrained")],
                   subjects=["dog"], profile="tiny", steps=2, prompts=1, images_per_prompt=1)

    def ids():
        return {(j.kind, j.label): j.id for j in build_plan(spec, proto).jobs if j.kind == "subject"}

    before = ids()
    monkeypatch.setattr(photos, "PHOTO_DECODE", photos.PHOTO_DECODE + "-changed")
    after = ids()
    assert before[("subject", "dreambooth")] != after[("subject", "dreambooth")]
    assert before[("subject", "pretrained")] == after[("subject", "pretrained")]  # reads no photos


def test_the_data_check_reads_the_decoded_photo(sample, tmp_path):
    """Decoding and checking compose: ``load_subject_image`` decodes once (reduced) and checks the header's
    size and frame count. Multi-picture JPEGs (phones' photo + preview) are still photos."""
    from dreambench.data.check import load_subject_image
    from dreambench.errors import DataError

    mpo = next(p for p in sample if Image.open(p).format == "MPO")
    ph = load_subject_image(mpo, short_side=64)
    assert ph.frames > 1 and ph.short_side >= 256 and min(ph.image.size) < ph.short_side
    frames = [Image.new("RGB", (300, 300), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match="animated image"):
        load_subject_image(tmp_path / "a.gif", short_side=64)
    Image.new("RGB", (300, 200)).save(tmp_path / "small.jpg")
    with pytest.raises(DataError, match="300x200 px, short side below 256"):
        load_subject_image(tmp_path / "small.jpg", short_side=64)
